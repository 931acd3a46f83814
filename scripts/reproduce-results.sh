#!/usr/bin/env bash
# Reproduces the tables of docs/results.md: Read-ME refactoring of rme-mini (one expert per
# domain) and stories260K (--cluster 4), the baselines, router accuracy, routing locality and
# decode speed. Needs ../shared/data (RME_DATA overrides). Resumable: finished steps are skipped
# (delete build/results to start over). About 45 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/rme-mini-corpus.sh
S=${RME_DATA:-../shared/data}
W=${RME_WORK:-build/results}
ROUNDS=${RME_ROUNDS:-2}
[ -x build/bin/rme ] || scripts/build.sh
RME=build/bin/rme
mkdir -p "$W"
log() { echo "== $*" >&2; }
DOMAINS="stories books wiki qa dialogue math code"

# ---------- rme-mini ----------
M=$W/mini
if [ ! -f "$M/corpus/manifest.json" ]; then
  log "rme-mini corpus"
  rme_mini_corpus $RME data/models/rme-mini "$M/corpus" "$S"
fi
if [ ! -f "$M/stats.safetensors" ]; then
  log "profile rme-mini on data/calibration"
  $RME profile data/models/rme-mini --tokens 16384 --out "$M/stats.safetensors" \
    $(for d in $DOMAINS; do echo "--domain $d=data/calibration/$d.txt"; done)
fi
[ -f "$M/moe/config.json" ] || $RME moefy data/models/rme-mini --stats "$M/stats.safetensors" --out "$M/moe" | tee "$M/moefy.txt"
[ -f "$M/pruned/config.json" ] || $RME moefy data/models/rme-mini --stats "$M/stats.safetensors" --prune --out "$M/pruned"
[ -f "$M/moe-r/config.json" ] || $RME train-router "$M/moe" --corpus "$M/corpus" --out "$M/moe-r" \
  --steps 600 --eval-tokens 16384 | tee "$M/router.txt"
[ -f "$M/moe-f/config.json" ] || $RME finetune "$M/moe-r" --corpus "$M/corpus" --out "$M/moe-f" \
  --rounds "$ROUNDS" --steps 150 --router-steps 75
[ -f "$M/lg-f/config.json" ] || $RME finetune "$M/moe-r" --routing layer-gate --corpus "$M/corpus" \
  --out "$M/lg-f" --rounds "$ROUNDS" --steps 150
[ -f "$M/pruned-f/config.json" ] || $RME finetune "$M/pruned" --corpus "$M/corpus" --out "$M/pruned-f" \
  --rounds "$ROUNDS" --steps 150

# Held-out text: the first 100 KB of each domain's validation split.
mkdir -p "$M/eval"
for d in $DOMAINS; do
  [ -f "$M/eval/$d.txt" ] || head -c 100000 "$M/corpus/$d.valid.txt" > "$M/eval/$d.txt"
done
# bpb MODEL ROUTING DOMAIN -> bits per byte (cached)
bpb() {
  local key
  key=$(echo "$1-$2-$3" | tr '/:' '__')
  local out="$W/cache/$key.json"
  mkdir -p "$W/cache"
  if [ ! -s "$out" ]; then
    if [ "$2" = dense ]; then
      $RME perplexity "$1" -f "$4" --ctx 256 --json > "$out.tmp" 2>/dev/null
    else
      $RME perplexity "$1" -f "$4" --ctx 256 --json --routing "$2" --dense "${5:-}" > "$out.tmp" 2>/dev/null
    fi
    mv "$out.tmp" "$out"
  fi
  sed -E 's/.*"bits_per_byte": ([0-9.]+).*/\1/' "$out"
}
# row LABEL MODEL ROUTING DENSE DIR DOMAINS... -> markdown row with the mean
row() {
  local label=$1 model=$2 routing=$3 dense=$4 dir=$5
  shift 5
  local line="| $label |" sum=0 n=0 v
  for d in "$@"; do
    v=$(bpb "$model" "$routing" "$(basename "$dir")-$d" "$dir/$d.txt" "$dense")
    line="$line $v |"
    sum=$(awk -v a="$sum" -v b="$v" 'BEGIN{print a+b}')
    n=$((n + 1))
  done
  echo "$line **$(awk -v a="$sum" -v n="$n" 'BEGIN{printf "%.4f", a/n}')** |"
}
header() {
  local h="| model |" s="|---|"
  for d in "$@"; do h="$h $d |"; s="$s---:|"; done
  echo "$h mean |"
  echo "$s---:|"
}
DENSE=data/models/rme-mini
log "evaluating rme-mini variants"
{
  echo "### rme-mini: bits per byte on held-out text (lower is better)"
  echo
  echo "After router training (experts are the dense parent's channels, untouched):"
  echo
  header $DOMAINS
  row "(a) dense parent" $DENSE dense "" "$M/eval" $DOMAINS
  row "(b) Read-ME (pre-gating router)" "$M/moe-r" router "" "$M/eval" $DOMAINS
  row "(c) oracle routing" "$M/moe-r" oracle $DENSE "$M/eval" $DOMAINS
  row "(d) random routing" "$M/moe-r" random "" "$M/eval" $DOMAINS
  row "(e) pruned dense, same active width" "$M/pruned" dense "" "$M/eval" $DOMAINS
  row "(f) layer-wise gates" "$M/moe-r" layer-gate "" "$M/eval" $DOMAINS
  echo
  echo "After $ROUNDS rounds of fine-tuning (each model tuned with the same steps and data):"
  echo
  header $DOMAINS
  row "(a) dense parent (not tuned)" $DENSE dense "" "$M/eval" $DOMAINS
  row "(b) Read-ME" "$M/moe-f" router "" "$M/eval" $DOMAINS
  row "(c) oracle routing on (b)'s experts" "$M/moe-f" oracle $DENSE "$M/eval" $DOMAINS
  row "(d) random routing on (b)'s experts" "$M/moe-f" random "" "$M/eval" $DOMAINS
  row "(e) pruned dense, tuned" "$M/pruned-f" dense "" "$M/eval" $DOMAINS
  row "(f) layer-wise gates, tuned with them" "$M/lg-f" layer-gate "" "$M/eval" $DOMAINS
  echo
  echo "Model sizes (from \`rme moefy\`):"
  echo
  echo '```'
  grep -E "^parameters" "$M/moefy.txt"
  echo '```'
  echo
  echo "Router accuracy against the oracle expert on held-out text (from \`rme train-router\`):"
  echo
  echo '```'
  grep -A9 "^domain" "$M/router.txt"
  echo '```'
} > "$W/mini.md"

log "routing analysis"
for r in router layer-gate; do
  [ -f "$M/analysis-$r/locality.csv" ] || $RME analyze-routing "$M/moe-r" --routing $r --tokens 16384 \
    $(for d in $DOMAINS; do echo "--domain $d=$M/eval/$d.txt"; done) --out "$M/analysis-$r" > "$M/analysis-$r.txt"
done
{
  echo "### Routing of rme-mini's MoE on held-out text (\`rme analyze-routing\`)"
  echo
  echo "(b) Read-ME router (one expert per token for all layers):"
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
for i in 1 2 3 4 5 6 7; do
  gen_tps $DENSE >> "$W/speed-dense.txt"
  gen_tps "$M/moe-f" >> "$W/speed-moe.txt"
  gen_tps "$M/pruned-f" >> "$W/speed-pruned.txt"
done
med() { sort -n "$1" | sed -n 4p; }
{
  echo "### Decode speed, rme-mini (2 threads, 200 new tokens, median of 7 alternating runs)"
  echo
  echo "| model | tok/s | MB of weights read per token |"
  echo "|---|---:|---:|"
  mb() { $RME info "$1" 2>/dev/null | sed -nE 's/^per token: +([0-9.]+) MB.*/\1/p'; }
  echo "| (a) dense parent | $(med "$W/speed-dense.txt") | $(awk 'BEGIN{printf "%.2f", 6950144*2/1e6}') |"
  echo "| (b) Read-ME MoE (router + shared + 1 expert) | $(med "$W/speed-moe.txt") | $(mb "$M/moe-f") |"
  echo "| (e) pruned dense | $(med "$W/speed-pruned.txt") | $(mb "$M/pruned-f") |"
} > "$W/speed.md"

# ---------- stories260K (no domain labels: 4 k-means pseudo-domains) ----------
T=$W/stories260K
SD="data/models/stories260K.bin --tokenizer data/models/tok512.bin"
mkdir -p "$T"
if [ ! -f "$T/stats.safetensors" ]; then
  log "profile stories260K"
  head -c 400000 "$S/stories/tinystories_train_head.txt" > "$T/calib.txt"
  $RME profile $SD --tokens 65536 --domain stories="$T/calib.txt" --out "$T/stats.safetensors"
fi
[ -f "$T/moe/config.json" ] || $RME moefy $SD --stats "$T/stats.safetensors" --cluster 4 --out "$T/moe" | tee "$T/moefy.txt"
[ -f "$T/pruned/config.json" ] || $RME moefy $SD --stats "$T/stats.safetensors" --cluster 4 --prune --out "$T/pruned"
[ -f "$T/corpus/manifest.json" ] || $RME corpus --tokenizer "$T/moe" --out "$T/corpus" \
  --domain stories="$S/stories/tinystories_train_head.txt" --valid stories="$S/stories/tinystories_valid_head.txt"
[ -f "$T/moe-r/config.json" ] || $RME train-router "$T/moe" --corpus "$T/corpus" --out "$T/moe-r" \
  --steps 400 --eval-tokens 16384 | tee "$T/router.txt"
[ -f "$T/moe-f/config.json" ] || $RME finetune "$T/moe-r" --corpus "$T/corpus" --out "$T/moe-f" \
  --rounds "$ROUNDS" --steps 150 --router-steps 75
[ -f "$T/lg-f/config.json" ] || $RME finetune "$T/moe-r" --routing layer-gate --corpus "$T/corpus" \
  --out "$T/lg-f" --rounds "$ROUNDS" --steps 150
[ -f "$T/pruned-f/config.json" ] || $RME finetune "$T/pruned" --corpus "$T/corpus" --out "$T/pruned-f" \
  --rounds "$ROUNDS" --steps 150
mkdir -p "$T/eval"
[ -f "$T/eval/stories.txt" ] || head -c 200000 "$T/corpus/stories.valid.txt" > "$T/eval/stories.txt"
# The dense parent as an HF directory, so every row reads the same tokenizer.
[ -f "$T/dense/config.json" ] || $RME convert $SD "$T/dense" --type f32
log "evaluating stories260K variants"
{
  echo "### stories260K (--cluster 4): bits per byte on TinyStories validation text"
  echo
  echo "| model | after router training | after $ROUNDS rounds of fine-tuning |"
  echo "|---|---:|---:|"
  one() { bpb "$1" "$2" "stories260K-$3" "$T/eval/stories.txt" "$T/dense"; }
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

# Plots people would rather look at than read, next to the results.
mkdir -p docs/img
cp "$M/analysis-router/expert_load.png" docs/img/mini-expert-load-router.png
cp "$M/analysis-layer-gate/expert_load.png" docs/img/mini-expert-load-layer-gate.png
cp "$M/analysis-layer-gate/transitions.png" docs/img/mini-layer-transitions.png
cp "$M/moe-r/train/router_accuracy.png" docs/img/mini-router-accuracy.png
cp "$M/moe-f/train/finetune_val.png" docs/img/mini-finetune-val.png

# ---------- docs/results.md: replace the generated block ----------
{
  echo "<!-- results:begin (generated by scripts/reproduce-results.sh; do not edit) -->"
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
  echo
  cat "$W/speed.md"
  echo
  cat "$W/stories.md"
  echo
  echo "<!-- results:end -->"
} > "$W/block.md"
awk -v blockfile="$W/block.md" '
  /<!-- results:begin/ { while ((getline l < blockfile) > 0) print l; skip = 1; next }
  /<!-- results:end -->/ { skip = 0; next }
  !skip { print }
' docs/results.md > "$W/results.md.tmp"
mv "$W/results.md.tmp" docs/results.md
log "docs/results.md updated"
