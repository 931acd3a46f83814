#!/usr/bin/env bash
# The Quick start's main job: refactor the shipped dense rme-mini into a Read-ME MoE (profile
# per-domain activations, carve a shared expert + one expert per domain, distill the pre-gating
# router), compare dense vs MoE on held-out text, and generate with the MoE. Runs from shipped
# data only. About 5 minutes on 2 cores after the build. Options:
#   --fresh         redo every step (default: reuse build/demo outputs of an earlier run)
#   --finetune N    also fine-tune the MoE's experts for N steps (about 1.5 s per step)
set -euo pipefail
cd "$(dirname "$0")/.."
FRESH=0
FT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --fresh) FRESH=1 ;;
    --finetune) FT=$2; shift ;;
    *) echo "usage: scripts/demo.sh [--fresh] [--finetune STEPS]" >&2; exit 2 ;;
  esac
  shift
done
[ -x build/bin/rme ] || scripts/build.sh
RME=build/bin/rme
W=build/demo
[ $FRESH = 1 ] && rm -rf "$W"
mkdir -p "$W"
DOMAINS="stories books wiki qa dialogue math code"
DENSE=data/models/rme-mini
step() { echo; echo "==> $*"; }

step "1/6 profile: mean |down_proj input| per domain, layer and channel (data/calibration)"
[ -f "$W/stats.safetensors" ] || $RME profile $DENSE --tokens 8192 --out "$W/stats.safetensors" \
  $(for d in $DOMAINS; do echo "--domain $d=data/calibration/$d.txt"; done)
step "2/6 moefy: each domain keeps its top 50% channels; common ones = shared expert"
[ -f "$W/moe/config.json" ] || $RME moefy $DENSE --stats "$W/stats.safetensors" --out "$W/moe"
step "3/6 train-router: distill the pre-gating router from the dense model's activations"
[ -f "$W/corpus/manifest.json" ] || $RME corpus --tokenizer $DENSE --out "$W/corpus" \
  $(for d in $DOMAINS; do echo "--domain $d=data/calibration/$d.txt"; done) > /dev/null
[ -f "$W/moe-r/config.json" ] || $RME train-router "$W/moe" --corpus "$W/corpus" --out "$W/moe-r" \
  --steps 300 --eval-tokens 2048
MOE=$W/moe-r
if [ "$FT" -gt 0 ]; then
  [ -f "$W/moe-f/config.json" ] || $RME finetune "$W/moe-r" --corpus "$W/corpus" --out "$W/moe-f" \
    --steps "$FT"
  MOE=$W/moe-f
fi

step "4/6 dense vs MoE: bits per byte on held-out text (data/eval; lower is better)"
bpb() {
  $RME perplexity "$@" --ctx 256 --json 2>/dev/null | sed -E 's/.*"bits_per_byte": ([0-9.]+).*/\1/'
}
printf "%-10s %8s %10s %8s %8s\n" domain dense "MoE-router" oracle random
for d in $DOMAINS; do
  printf "%-10s %8s %10s %8s %8s\n" "$d" "$(bpb $DENSE -f data/eval/$d.txt)" \
    "$(bpb "$MOE" -f data/eval/$d.txt)" "$(bpb "$MOE" -f data/eval/$d.txt --routing oracle --dense $DENSE)" \
    "$(bpb "$MOE" -f data/eval/$d.txt --routing random)"
done
echo "(MoE: shared expert + 1 of 7 routed experts = half the dense FFN per token; oracle: each"
echo " token's expert chosen from the dense activations; random: uniform experts.)"

step "5/6 generate with the MoE (router picks each token's expert before the backbone runs)"
$RME generate "$MOE" --prompt "Once upon a time" --new-tokens 120 --temp 0
echo
$RME generate "$MOE" --prompt "Question: Tom has 3 apples and buys 5 more. How many apples does he have?" \
  --new-tokens 60 --temp 0
echo

step "6/6 serve the MoE (OpenAI API, continuous batching, expert-aware scheduling)"
PORT=${RME_DEMO_PORT:-18088}
# An 8 MiB expert budget holds 2 of the 7 routed experts (the shared expert is always resident).
$RME serve "$MOE" --port "$PORT" --policy expert --expert-cache-mb 8 >"$W/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
# Four streamed requests at once; curl reports each one's total time, the server its TTFT.
for p in "Once upon a time" "The little dog" "Question: what is 7 times 6?" "int main() {"; do
  curl -sN "localhost:$PORT/v1/completions" -o "$W/stream-${#p}.txt" \
    -w "%{time_total} $p\n" \
    -d "{\"prompt\": \"$p\", \"max_tokens\": 40, \"temperature\": 0, \"stream\": true}" &
done | sort -n | awk '{e=$1; $1=""; printf "  40 tokens streamed in %5.0f ms:%s\n", e*1000, $0}'
echo "first stream, as received (SSE):"
head -c 400 "$W/stream-16.txt"
echo "..."
curl -s "localhost:$PORT/metrics" | awk '
  /^rme_generated_tokens_total / {tok = $2} /^rme_steps_total / {steps = $2}
  /^rme_expert_cache_hit_rate / {hit = $2}
  /^rme_time_to_first_token_seconds_sum / {ts = $2} /^rme_time_to_first_token_seconds_count / {tc = $2}
  /^rme_step_distinct_experts_sum / {es = $2} /^rme_step_distinct_experts_count / {ec = $2}
  END {
    printf "server: %d tokens in %d batched steps; mean TTFT %.0f ms; %.2f distinct experts per step;", tok, steps, 1000 * ts / tc, es / ec
    printf " expert cache (8 MiB budget) hit rate %.0f%%\n", 100 * hit
  }'
kill $SERVER
wait $SERVER 2>/dev/null || true
trap - EXIT
echo
echo "MoE checkpoint: $MOE (docs/formats.md); full results: docs/results.md; serving: docs/serving.md"
