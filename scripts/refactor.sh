#!/usr/bin/env bash
# Refactors a user's own dense Llama-family model into a Read-ME MoE with one command:
# corpus -> profile -> moefy -> router targets -> train-router -> finetune -> an evaluation table
# (bits per byte of dense vs MoE vs random routing on each domain's held-out text).
#   scripts/refactor.sh MODEL NAME=FILE[,FILE...] [NAME=FILE...] [options]
# MODEL: a GGUF file or a Hugging Face directory (llama, mistral, qwen2). Every stage is skipped
# when its output exists and resumes from its checkpoint when it was killed, so re-running the
# same command after a crash continues. Before it starts it prints what each stage is expected
# to take (time from a short measured prefill, memory from the model's size).
# Options:
#   --out DIR              work directory (default build/refactor/<model name>)
#   --tokenizer DIR        tokenizer for the corpus (default: MODEL's own directory)
#   --profile-tokens N     calibration tokens per domain for profile (default 8192)
#   --router-steps N       router distillation steps (default 600)
#   --target-tokens N      tokens of router targets made by the engine (default 262144)
#   --finetune-steps N     expert-tuning steps per round (default 150; 0 = no fine-tuning)
#   --rounds R             fine-tuning rounds, router tuning between them (default 2)
#   --router-tune-steps N  router-tuning steps between rounds (default 150)
#   --round-targets MODE   what those distill from when fine-tuning is bounded: current (the
#                          experts as tuned so far, made once a round) or dense (the parent's)
#   --round-target-tokens N  tokens of current-expert targets per round (default 32768)
#   --eval-bytes N         held-out bytes per domain in the table (default 100000)
#   --eval-tokens N        held-out tokens per domain train-router and finetune report (2048)
#   --batch N              sequences per router and fine-tuning step (default 16)
#   --threads N            threads (default: all cores)
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
MODEL=$1; shift
DOMAINS=()
OUT="" TOK="" PROFILE_TOKENS=8192 ROUTER_STEPS=600 TARGET_TOKENS=262144 FT_STEPS=150 ROUNDS=2 ROUTER_TUNE_STEPS=150
EVAL_BYTES=100000 THREADS=0 EVAL_TOKENS=2048 BATCH=16 ROUND_TARGETS=current ROUND_TARGET_TOKENS=32768
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift ;;
    --tokenizer) TOK=$2; shift ;;
    --profile-tokens) PROFILE_TOKENS=$2; shift ;;
    --router-steps) ROUTER_STEPS=$2; shift ;;
    --target-tokens) TARGET_TOKENS=$2; shift ;;
    --finetune-steps) FT_STEPS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --router-tune-steps) ROUTER_TUNE_STEPS=$2; shift ;;
    --round-targets) ROUND_TARGETS=$2; shift ;;
    --round-target-tokens) ROUND_TARGET_TOKENS=$2; shift ;;
    --eval-bytes) EVAL_BYTES=$2; shift ;;
    --eval-tokens) EVAL_TOKENS=$2; shift ;;
    --batch) BATCH=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    *=*) DOMAINS+=("$1") ;;
    *) echo "refactor: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
[ ${#DOMAINS[@]} -ge 2 ] || { echo "refactor: name at least two domains (NAME=FILE)" >&2; exit 2; }
[ -e "$MODEL" ] || { echo "refactor: $MODEL: no such file or directory" >&2; exit 2; }
RME=${RME:-build/bin/rme}  # tests name their build's binary
[ -x "$RME" ] || scripts/build.sh
name=$(basename "${MODEL%/}"); name=${name%.gguf}
OUT=${OUT:-build/refactor/$name}
# The corpus is tokenized by --tokenizer DIR, else by the model directory's own tokenizer files;
# the model commands take --tokenizer only when it was given (a GGUF may embed its vocabulary).
TOK_ARG=""
if [ -n "$TOK" ]; then
  TOK_ARG="--tokenizer $TOK"
elif [ -d "$MODEL" ]; then
  TOK=$MODEL
else
  echo "refactor: a GGUF parent needs --tokenizer DIR (tokenizer.model or tokenizer.json) for the corpus" >&2
  exit 2
fi
mkdir -p "$OUT"
TH="--threads $THREADS"
DOM_ARGS=()
for d in "${DOMAINS[@]}"; do DOM_ARGS+=(--domain "$d"); done
step() { echo; echo "==> [$(date +%H:%M:%S)] $*"; }
# Peak memory and wall time of every stage, in OUT/stages.tsv.
timed() {
  local what=$1; shift
  local t0=$SECONDS
  /usr/bin/time -f "%M" -o "$OUT/.rss" "$@"
  printf '%s\t%d\t%d\n' "$what" $((SECONDS - t0)) "$(cat "$OUT/.rss")" >> "$OUT/stages.tsv"
}
[ -x /usr/bin/time ] || { echo "refactor: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

# The plan: sizes from rme info, speed from one measured prefill of 128 tokens.
info=$($RME info "$MODEL" 2>/dev/null)
params=$(sed -nE 's/^parameters: +([0-9]+).*/\1/p' <<<"$info")
bytes=$(du -sb "$MODEL" | cut -f1)
pp=$($RME bench "$MODEL" $TH --pp 128 --tg 1 -r 1 --json 2>/dev/null |
  sed -E 's/.*"pp128_tps": ([0-9.]+).*/\1/')
n_dom=${#DOMAINS[@]}
awk -v m="$MODEL" -v p="$params" -v b="$bytes" -v pp="$pp" -v nd="$n_dom" -v pt="$PROFILE_TOKENS" \
  -v tt="$TARGET_TOKENS" -v et="$EVAL_TOKENS" -v rs="$ROUTER_STEPS" -v fs="$FT_STEPS" -v r="$ROUNDS" \
  -v bt="$BATCH" 'BEGIN {
  gb = 1024 ^ 3
  printf "plan for %s: %.2fB parameters, %.1f GB on disk, prefill %.0f tok/s on this machine\n",
    m, p / 1e9, b / gb, pp
  printf "  %-13s %10s %10s\n", "stage", "time", "memory"
  printf "  %-13s %9.0fm %8.1fGB\n", "profile", nd * pt / pp / 60, b / gb + 0.5
  printf "  %-13s %9.0fm %8.1fGB  (parent mapped, one tensor at a time)\n", "moefy", b / gb * 11 / 60, b / gb + 0.5
  printf "  %-13s %9.0fm %8.1fGB\n", "targets", (tt + nd * et) / pp / 60, b / gb + 0.5
  printf "  %-13s %9s %8s  (the router only: its step time does not grow with the model)\n", "train-router", "minutes", "<1GB"
  # Fine-tuning (forward, recomputation, backward in libtorch f32) ran at about a quarter of the
  # engine prefill rate at 1.1B and at 7B with OpenBLAS pinned to AVX2, 0.4 with its AVX-512
  # kernels (docs/training.md): the slower figure, so the plan does not promise too much.
  if (fs > 0)
    printf "  %-13s %9.0fm %8s  (%d x %d steps of %d x 128 tokens at ~%.0f tok/s; full f32 + AdamW if it fits, else bounded: 16-bit frozen, one expert trainable; memory without the mapped MoE'"'"'s page cache)\n",
      "finetune", r * fs * bt * 128 / (0.25 * pp) / 60, "<16GB", r, fs, bt, 0.25 * pp
}'
step "1/6 corpus: tokenize each domain, hold out its tail"
[ -f "$OUT/corpus/manifest.json" ] ||
  $RME corpus --tokenizer "$TOK" --out "$OUT/corpus" "${DOM_ARGS[@]}" $TH > /dev/null
step "2/6 profile: mean |down_proj input| per domain, layer and channel"
[ -f "$OUT/stats.safetensors" ] || timed profile $RME profile "$MODEL" $TOK_ARG $TH \
  --tokens "$PROFILE_TOKENS" --seq-len 256 "${DOM_ARGS[@]}" --out "$OUT/stats.safetensors"
step "3/6 moefy: each domain keeps its top 50% channels; common ones = shared expert"
[ -f "$OUT/moe/config.json" ] ||
  timed moefy $RME moefy "$MODEL" --stats "$OUT/stats.safetensors" --out "$OUT/moe" $TH
step "4/6 router targets (engine pass over the dense parent) and router distillation"
[ -f "$OUT/moe-r/config.json" ] || timed train-router $RME train-router "$OUT/moe" \
  --corpus "$OUT/corpus" --out "$OUT/moe-r" --dense "$MODEL" --targets "$OUT/targets" \
  --target-tokens "$TARGET_TOKENS" --steps "$ROUTER_STEPS" --batch "$BATCH" \
  --eval-tokens "$EVAL_TOKENS" $TH
MOE=$OUT/moe-r
if [ "$FT_STEPS" -gt 0 ]; then
  step "5/6 finetune: experts with the LM loss, router frozen, $ROUNDS rounds"
  [ -f "$OUT/moe-f/config.json" ] || timed finetune $RME finetune "$OUT/moe-r" \
    --corpus "$OUT/corpus" --out "$OUT/moe-f" --rounds "$ROUNDS" --steps "$FT_STEPS" \
    --router-steps "$ROUTER_TUNE_STEPS" --batch "$BATCH" --eval-tokens "$EVAL_TOKENS" \
    --targets "$OUT/targets" --round-targets "$ROUND_TARGETS" \
    --round-target-tokens "$ROUND_TARGET_TOKENS" $TH
  MOE=$OUT/moe-f
fi
step "6/6 bits per byte on held-out text (lower is better)"
RME=$RME MAX_BYTES=$EVAL_BYTES scripts/eval-bpb.sh "$OUT/corpus" "dense=$MODEL $TOK_ARG" \
  "moe=$MOE --tokenizer $TOK" "random=$MOE --tokenizer $TOK --routing random" | tee "$OUT/eval.md"
echo
echo "stage times (s) and peak memory (KB), $OUT/stages.tsv:"
column -t "$OUT/stages.tsv" 2>/dev/null || cat "$OUT/stages.tsv"
echo "MoE: $MOE"
