#!/usr/bin/env bash
# Reproduces the tables of docs/results.md: Read-ME refactoring of rme-mini (one expert per
# domain; every trained row over three seeds) against equal-budget dense models, top-2 routing,
# the baselines, router accuracy, routing locality, decode speed, and stories260K (--cluster 4).
# Needs ../shared/data (RME_DATA overrides). Resumable: finished steps are skipped (delete
# build/results to start over). Two lanes on two cores: the from-scratch model (about two hours
# on one core) and then stories260K in one, everything else beside it; about 2.5 hours in all.
# RME_QUICK=1: a smoke run with tiny step counts into build/results-quick; docs are not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/rme-mini-corpus.sh
source scripts/lib/results-table.sh
S=${RME_DATA:-../shared/data}
QUICK=${RME_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  W=${RME_WORK:-build/results-quick}
  SEEDS=${RME_SEEDS:-1 2}
  R_STEPS=4 F_STEPS=3 F_RSTEPS=2 EVAL_BYTES=3000 STORIES_BYTES=3000 CAL_TOKENS=512 SPEED_RUNS=1
  FT_EVAL=256
else
  W=${RME_WORK:-build/results}
  SEEDS=${RME_SEEDS:-1 2 3}
  R_STEPS=600 F_STEPS=150 F_RSTEPS=75 EVAL_BYTES=100000 STORIES_BYTES=200000 CAL_TOKENS=16384
  SPEED_RUNS=7 FT_EVAL=8192
fi
ROUNDS=${RME_ROUNDS:-2}
[ -x build/bin/rme ] || scripts/build.sh
RME=build/bin/rme
export W RME
mkdir -p "$W"
[ -f "$W/started" ] || date +%s > "$W/started"
log() { echo "== $*" >&2; }
DOMAINS="stories books wiki qa dialogue math code"
# ---------- rme-mini ----------
M=$W/mini
DENSE=data/models/rme-mini
if [ ! -f "$M/corpus/manifest.json" ]; then
  log "rme-mini corpus"
  rme_mini_corpus $RME $DENSE "$M/corpus" "$S"
fi
if [ ! -f "$M/stats.safetensors" ]; then
  log "profile rme-mini on data/calibration"
  timed profile $RME profile $DENSE --tokens $CAL_TOKENS --out "$M/stats.safetensors" \
    $(for d in $DOMAINS; do echo "--domain $d=data/calibration/$d.txt"; done)
fi
[ -f "$M/moe/config.json" ] || $RME moefy $DENSE --stats "$M/stats.safetensors" --out "$M/moe" | tee "$M/moefy.txt"
[ -f "$M/pruned/config.json" ] || $RME moefy $DENSE --stats "$M/stats.safetensors" --prune --out "$M/pruned"

# ---------- stories260K (no domain labels: 4 k-means pseudo-domains) ----------
# stories260k_part THREADS: runs in lane A after the from-scratch model; writes $W/stories.md.
stories260k_part() {
  local th=$1
  T=$W/stories260K
  SD="data/models/stories260K.bin --tokenizer data/models/tok512.bin"
  mkdir -p "$T"
  if [ ! -f "$T/stats.safetensors" ]; then
    log "profile stories260K"
    head -c 400000 "$S/stories/tinystories_train_head.txt" > "$T/calib.txt"
    timed profile $RME profile $SD --threads $th --tokens $((CAL_TOKENS * 4)) --domain stories="$T/calib.txt" --out "$T/stats.safetensors"
  fi
  [ -f "$T/moe/config.json" ] || $RME moefy $SD --stats "$T/stats.safetensors" --cluster 4 --out "$T/moe" | tee "$T/moefy.txt"
  [ -f "$T/pruned/config.json" ] || $RME moefy $SD --stats "$T/stats.safetensors" --cluster 4 --prune --out "$T/pruned"
  [ -f "$T/corpus/manifest.json" ] || $RME corpus --tokenizer "$T/moe" --out "$T/corpus" \
    --domain stories="$S/stories/tinystories_train_head.txt" --valid stories="$S/stories/tinystories_valid_head.txt"
  [ -f "$T/moe-r/config.json" ] || timed router $RME train-router "$T/moe" --corpus "$T/corpus" \
    --out "$T/moe-r" --steps $((R_STEPS * 2 / 3)) --eval-tokens $CAL_TOKENS --threads $th | tee "$T/router.txt"
  TFT="--threads $th --corpus $T/corpus --rounds $ROUNDS --steps $F_STEPS --router-steps $F_RSTEPS --eval-tokens $FT_EVAL"
  [ -f "$T/moe-f/config.json" ] || timed finetune $RME finetune "$T/moe-r" $TFT --out "$T/moe-f"
  [ -f "$T/lg-f/config.json" ] || timed finetune $RME finetune "$T/moe-r" --routing layer-gate $TFT \
    --out "$T/lg-f"
  [ -f "$T/pruned-f/config.json" ] || timed finetune $RME finetune "$T/pruned" $TFT --out "$T/pruned-f"
  mkdir -p "$T/eval"
  [ -f "$T/eval/stories.txt" ] || head -c $STORIES_BYTES "$T/corpus/stories.valid.txt" > "$T/eval/stories.txt"
  # The dense parent as an HF directory, so every row reads the same tokenizer.
  [ -f "$T/dense/config.json" ] || $RME convert $SD "$T/dense" --type f32
  log "evaluating stories260K variants"
  {
    echo "### stories260K (--cluster 4): bits per byte on TinyStories validation text"
    echo
    echo "| model | after router training | after $ROUNDS rounds of fine-tuning |"
    echo "|---|---:|---:|"
    one() { bpb "$1" "$2" "$T/eval/stories.txt" "$T/dense"; }
    echo "| (a) dense parent | $(one "$T/dense" dense a) | (not tuned) |"
    echo "| (b) Read-ME | $(one "$T/moe-r" router b) | $(one "$T/moe-f" router bf) |"
    echo "| (c) oracle routing | $(one "$T/moe-r" oracle c) | $(one "$T/moe-f" oracle cf) |"
    echo "| (d) random routing | $(one "$T/moe-r" random d) | $(one "$T/moe-f" random df) |"
    echo "| (e) pruned dense | $(one "$T/pruned" dense e) | $(one "$T/pruned-f" dense ef) |"
    echo "| (f) layer-wise gates | $(one "$T/moe-r" layer-gate f) | $(one "$T/lg-f" layer-gate ff) |"
    echo
    echo '```'
    grep -E "^cluster|^parameters" "$T/moefy.txt"
    grep -A3 "^domain" "$T/router.txt"
    echo '```'
  } > "$W/stories.md"
}

# Lane A, in the background: the dense model of the MoE's active size (FFN = shared + one
# expert = 512 in every layer) trained from scratch like the parent for the parent's 13,107,200
# tokens plus the 614,400 tokens the MoE's experts were tuned on (configs/rme-mini-active.json:
# 3,350 steps x 16 x 256), on one thread; then stories260K. It holds $M/scratch.lock while it
# runs (no two runs train it at once); lane B's commands take one thread while lane A runs,
# both cores after.
SCRATCH_LOCK=$M/scratch.lock
thr() { if kill -0 "$LANE_A" 2> /dev/null; then echo 1; else echo 0; fi; }
sed -E 's/"threads": [0-9]+/"threads": 1/' configs/rme-mini-active.json > "$M/scratch-config.json"
if [ "$QUICK" = 1 ]; then
  sed -i -E 's/"steps": [0-9]+/"steps": 6/; s/"warmup_steps": [0-9]+/"warmup_steps": 2/;
    s/"eval_every": [0-9]+/"eval_every": 3/; s/"eval_tokens": [0-9]+/"eval_tokens": 512/' \
    "$M/scratch-config.json"
fi
(
  flock 9
  [ -f "$M/scratch/model/config.json" ] || timed scratch $RME train --config "$M/scratch-config.json" \
    --corpus "$M/corpus" --out "$M/scratch" --export-type bf16 > "$M/scratch.log" 2>&1
  BPB_THREADS=1 stories260k_part 1 > "$W/stories260K.log" 2>&1
) 9> "$SCRATCH_LOCK" &
LANE_A=$!

# Every trained row per seed: the seed sets the router's initialisation and the order of the
# data, and one seed gives every tuned model (MoE, dense, pruned) exactly the same batches.
FT="--corpus $M/corpus --rounds $ROUNDS --steps $F_STEPS --router-steps $F_RSTEPS --eval-tokens $FT_EVAL"
for s in $SEEDS; do
  D=$M/seed$s
  mkdir -p "$D"
  log "rme-mini seed $s"
  [ -f "$D/moe-r/config.json" ] || timed router $RME train-router "$M/moe" --corpus "$M/corpus" \
    --out "$D/moe-r" --steps $R_STEPS --eval-tokens $CAL_TOKENS --seed $s --threads $(thr) |
    tee "$D/router.txt"
  [ -f "$D/moe-f/config.json" ] || timed finetune $RME finetune "$D/moe-r" $FT --seed $s \
    --threads $(thr) --out "$D/moe-f"
  [ -f "$D/dense-f/config.json" ] || timed finetune $RME finetune $DENSE $FT --seed $s \
    --threads $(thr) --out "$D/dense-f"
  [ -f "$D/moe-f2/config.json" ] || timed finetune $RME finetune "$D/moe-r" $FT --seed $s --top-k 2 \
    --threads $(thr) --out "$D/moe-f2"
  [ -f "$D/pruned-f/config.json" ] || timed finetune $RME finetune "$M/pruned" $FT --seed $s \
    --threads $(thr) --out "$D/pruned-f"
done
# Layer-wise gates are a baseline of the routing analysis, tuned for the first seed only.
S1=${SEEDS%% *}
[ -f "$M/seed$S1/lg-f/config.json" ] || timed finetune $RME finetune "$M/seed$S1/moe-r" \
  --routing layer-gate $FT --seed $S1 --threads $(thr) --out "$M/seed$S1/lg-f"

# Held-out text: the first 100 KB of each domain's validation split.
mkdir -p "$M/eval"
for d in $DOMAINS; do
  [ -f "$M/eval/$d.txt" ] || head -c $EVAL_BYTES "$M/corpus/$d.valid.txt" > "$M/eval/$d.txt"
done
SD1=$M/seed$S1
seed_list=$(echo $SEEDS | sed 's/ /, /g')
extra_tokens=$((ROUNDS * F_STEPS * 16 * 128))
# The rme-mini tables; every bits-per-byte figure comes from bpb's cache.
mini_table() {
  echo "### rme-mini: bits per byte on held-out text (lower is better)"
  echo
  echo "Rows with n > 1 are the mean over seeds $seed_list (router initialisation and data"
  echo "order); *spread* is the largest minus the smallest per-seed mean. Per-domain columns are"
  echo "means over the seeds. Rows with n = 1 are single runs: (a) and (g) have no seed here, (c)"
  echo "and (d) before tuning do not depend on it, and (c), (d) and (f) are otherwise run for seed $S1."
  echo
  echo "After router training (experts are the dense parent's channels, untouched):"
  echo
  header $DOMAINS
  E="$M/eval"
  srow a "(a) dense parent" $DENSE dense "" "$E" $DOMAINS
  srow b0 "(b) Read-ME (pre-gating router, top-1)" "$M/seed{s}/moe-r" router "" "$E" $DOMAINS
  srow b20 "(b2) Read-ME top-2 on the same experts" "$M/seed{s}/moe-r" router@2 "" "$E" $DOMAINS
  # The experts are the parent's channels and oracle and random routing ignore the router, so
  # these two do not depend on the seed.
  srow c0 "(c) oracle routing" "$SD1/moe-r" oracle $DENSE "$E" $DOMAINS
  srow d0 "(d) random routing" "$SD1/moe-r" random "" "$E" $DOMAINS
  srow e0 "(e) pruned dense, same active width" "$M/pruned" dense "" "$E" $DOMAINS
  srow f0 "(f) layer-wise gates (seed $S1)" "$SD1/moe-r" layer-gate "" "$E" $DOMAINS
  echo
  echo "After $ROUNDS rounds of fine-tuning: every tuned row saw the same $extra_tokens extra"
  echo "tokens per seed (same batches, same schedule and per-round decay):"
  echo
  header $DOMAINS
  srow a "(a) dense parent (not tuned)" $DENSE dense "" "$E" $DOMAINS
  srow a2 "(a2) dense parent tuned with the MoE's extra tokens" "$M/seed{s}/dense-f" dense "" "$E" $DOMAINS
  srow g "(g) dense of the MoE's active size, from scratch, parent's + extra tokens" "$M/scratch/model" dense "" "$E" $DOMAINS
  srow b "(b) Read-ME top-1" "$M/seed{s}/moe-f" router "" "$E" $DOMAINS
  srow b2 "(b2) Read-ME top-2, tuned with top-2" "$M/seed{s}/moe-f2" router "" "$E" $DOMAINS
  srow b21 "(b2') top-2 on (b)'s experts (tuned top-1)" "$M/seed{s}/moe-f" router@2 "" "$E" $DOMAINS
  srow c "(c) oracle routing on (b)'s experts (seed $S1)" "$SD1/moe-f" oracle $DENSE "$E" $DOMAINS
  srow d "(d) random routing on (b)'s experts (seed $S1)" "$SD1/moe-f" random "" "$E" $DOMAINS
  srow e "(e) pruned dense, tuned" "$M/seed{s}/pruned-f" dense "" "$E" $DOMAINS
  srow f "(f) layer-wise gates, tuned with them (seed $S1)" "$SD1/lg-f" layer-gate "" "$E" $DOMAINS
  echo
  echo "Who wins (mean bits per byte of the second model minus the first; a difference within the"
  echo "larger spread of the two is a tie):"
  echo
  echo "| comparison | difference | spread | verdict for the first-named |"
  echo "|---|---:|---:|---|"
  compare g b "(b) Read-ME vs (g) dense of the same active size from scratch"
  compare e b "(b) Read-ME vs (e) pruned dense, tuned"
  compare f b "(b) Read-ME vs (f) layer-wise gates"
  compare a2 b "(b) Read-ME vs (a2) dense parent with the same extra tokens"
  compare a b "(b) Read-ME vs (a) dense parent, not tuned"
  compare b b2 "(b2) top-2 vs (b) top-1, both tuned"
  compare b b21 "(b2') top-2 vs (b) top-1 on the same tuned experts"
  compare b0 b20 "(b2) top-2 vs (b) top-1 on the untuned experts"
  echo
  echo "Model sizes and bytes read per decoded token (weights in BF16; from \`rme moefy\` and"
  echo "\`rme info\`):"
  echo
  mb() { $RME info "$1" 2>/dev/null | sed -nE "s/^$2 +([0-9.]+) MB.*/\1/p"; }
  echo "| model | MB per token |"
  echo "|---|---:|"
  echo "| (a) dense parent | $(awk 'BEGIN{printf "%.2f", 6950144*2/1e6}') |"
  echo "| (b) Read-ME top-1 (router + shared + 1 expert) | $(mb "$SD1/moe-f" "per token:") |"
  echo "| (b2) Read-ME top-2 (router + shared + 2 experts) | $(mb "$SD1/moe-f2" "per token:") |"
  echo "| (e) pruned dense / (g) dense of the active size | $(mb "$SD1/pruned-f" "per token:") |"
  echo
  echo '```'
  grep -E "^parameters" "$M/moefy.txt"
  echo '```'
  echo
  echo "Router accuracy against the oracle expert on held-out text (\`rme train-router\`, seed 1):"
  echo
  echo '```'
  grep -A9 "^domain" "$SD1/router.txt"
  echo '```'
}
# Evaluations first, two at a time once lane A is done (lane A's model goes last).
log "evaluating rme-mini variants"
BPB_QUEUE=$W/bpb-queue mini_table > /dev/null
run_bpb_queue "$W/bpb-queue" $((2 - $(thr)))  # one lane while lane A runs, two after
log "waiting for lane A (from-scratch model, stories260K)"
wait $LANE_A || { echo "lane A failed: see $M/scratch.log, $W/stories260K.log" >&2; exit 1; }
BPB_QUEUE=$W/bpb-queue mini_table > /dev/null
run_bpb_queue "$W/bpb-queue" 2
mini_table > "$W/mini.md"

log "routing analysis"
for r in router layer-gate; do
  [ -f "$M/analysis-$r/locality.csv" ] || $RME analyze-routing "$SD1/moe-r" --routing $r --tokens $CAL_TOKENS \
    $(for d in $DOMAINS; do echo "--domain $d=$M/eval/$d.txt"; done) --out "$M/analysis-$r" > "$M/analysis-$r.txt"
done
{
  echo "### Routing of rme-mini's MoE on held-out text (\`rme analyze-routing\`)"
  echo
  echo "(b) Read-ME router (seed 1; one expert per token for all layers):"
  echo
  echo '```'
  cat "$M/analysis-router.txt"
  echo '```'
  echo
  echo "(f) layer-wise gates (one expert per token per layer):"
  echo
  echo '```'
  cat "$M/analysis-layer-gate.txt"
  echo '```'
} > "$W/routing.md"

log "decode speed"
# Generation tok/s of one run; the three models alternate so drift on a shared machine hits all.
gen_tps() {
  "$RME" generate "$1" --prompt "Once upon a time" --new-tokens 200 --temp 0 --ignore-eos 2>&1 >/dev/null |
    sed -nE 's/.*generation: [0-9]+ tokens, ([0-9.]+) tok\/s.*/\1/p'
}
rm -f "$W"/speed-*.txt
for i in $(seq $SPEED_RUNS); do
  gen_tps $DENSE >> "$W/speed-dense.txt"
  gen_tps "$SD1/moe-f" >> "$W/speed-moe.txt"
  gen_tps "$SD1/pruned-f" >> "$W/speed-pruned.txt"
done
med() { sort -n "$1" | sed -n "$(((SPEED_RUNS + 1) / 2))p"; }
{
  echo "### Decode speed, rme-mini (2 threads, 200 new tokens, median of $SPEED_RUNS alternating runs)"
  echo
  echo "| model | tok/s | MB of weights read per token |"
  echo "|---|---:|---:|"
  mb() { $RME info "$1" 2>/dev/null | sed -nE 's/^per token: +([0-9.]+) MB.*/\1/p'; }
  echo "| (a) dense parent | $(med "$W/speed-dense.txt") | $(awk 'BEGIN{printf "%.2f", 6950144*2/1e6}') |"
  echo "| (b) Read-ME MoE (router + shared + 1 expert) | $(med "$W/speed-moe.txt") | $(mb "$SD1/moe-f") |"
  echo "| (e) pruned dense (same shapes as (g)) | $(med "$W/speed-pruned.txt") | $(mb "$SD1/pruned-f") |"
} > "$W/speed.md"

# Plots people would rather look at than read, next to the results (a smoke run keeps its own).
IMG=docs/img
[ "$QUICK" = 1 ] && IMG=$W/img
mkdir -p "$IMG"
cp "$M/analysis-router/expert_load.png" "$IMG/mini-expert-load-router.png"
cp "$M/analysis-layer-gate/expert_load.png" "$IMG/mini-expert-load-layer-gate.png"
cp "$M/analysis-layer-gate/transitions.png" "$IMG/mini-layer-transitions.png"
cp "$SD1/moe-r/train/router_accuracy.png" "$IMG/mini-router-accuracy.png"
cp "$SD1/moe-f/train/finetune_val.png" "$IMG/mini-finetune-val.png"
cp "$M/scratch/val_loss.png" "$IMG/mini-active-scratch-val.png"

seed_plot "$IMG/mini-seeds.png" "rme-mini after fine-tuning: mean over seeds and seed range" \
  a2="(a2) dense parent + same tokens" g="(g) dense, active size, scratch" b="(b) Read-ME top-1" \
  b2="(b2) Read-ME top-2, tuned top-2" b21="(b2') top-2 on (b)'s experts" e="(e) pruned dense, tuned"

# What all of it cost, summed over every run of this script that built a part of it (the two
# lanes overlap, so the sum exceeds the wall time since $W/started).
compute=$(awk '{t[$1] += $2; all += $2}
  END {printf "%.0f min of runs: from-scratch model %.0f, router training %.0f, fine-tuning %.0f, evaluation %.0f, profiling %.0f", all/60, t["scratch"]/60, t["router"]/60, t["finetune"]/60, t["eval"]/60, t["profile"]/60}' "$W/times.tsv")
wall=$((($(date +%s) - $(cat "$W/started")) / 60))
cpu=$(lscpu | sed -nE 's/^Model name: +//p' | head -1)

# ---------- docs/results.md: replace the generated block ----------
{
  echo "<!-- results:begin (generated by scripts/reproduce-results.sh; do not edit) -->"
  echo
  echo "Compute for this block: $compute; $wall min of wall time in two lanes (${cpu:-unknown CPU},"
  echo "$(nproc) threads; decode-speed runs not counted)."
  echo
  cat "$W/mini.md"
  echo
  cat "$W/routing.md"
  echo
  echo "![expert load, router](img/mini-expert-load-router.png)"
  echo "![expert load, layer-wise gates](img/mini-expert-load-layer-gate.png)"
  echo "![layer transitions, layer-wise gates](img/mini-layer-transitions.png)"
  echo "![router accuracy during distillation](img/mini-router-accuracy.png)"
  echo "![validation loss during fine-tuning](img/mini-finetune-val.png)"
  echo "![validation loss of (g), the dense model of the active size trained from scratch](img/mini-active-scratch-val.png)"
  echo "![rme-mini rows after fine-tuning, mean and seed range](img/mini-seeds.png)"
  echo
  cat "$W/speed.md"
  echo
  cat "$W/stories.md"
  echo
  echo "<!-- results:end -->"
} > "$W/block.md"
if [ "$QUICK" = 1 ]; then
  log "smoke run done: $W/block.md (docs/results.md untouched)"
  exit 0
fi
awk -v blockfile="$W/block.md" '
  /<!-- results:begin/ { while ((getline l < blockfile) > 0) print l; skip = 1; next }
  /<!-- results:end -->/ { skip = 0; next }
  !skip { print }
' docs/results.md > "$W/results.md.tmp"
mv "$W/results.md.tmp" docs/results.md
log "docs/results.md updated"
