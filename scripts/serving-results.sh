#!/usr/bin/env bash
# Serving results for docs/serving.md on the timing model (a tinyllama-shaped random backbone
# driven by rme-mini's trained router): fcfs vs expert at three loads, expert-cache hit rates
# (cache-sim) and throughput under cache budgets with O_DIRECT, with and without prefetch.
# Needs build/results/mini/moe-f (scripts/reproduce-results.sh) for the trained router and its
# routing trace. Writes build/serving/ (JSON, CSV, PNG) and docs/img/serving-*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
RME=build/bin/rme
OUT=build/serving
MOE=${MOE:-build/results/mini/moe-f}
TRACE=${TRACE:-../shared/data/traces/AzureLLMInferenceTrace_conv.csv}
N=${N:-40}
PORT=${PORT:-18090}
mkdir -p "$OUT" docs/img
[ -f "$OUT/timing.gguf" ] ||
  $RME moefy --random-backbone tinyllama --router "$MOE" --type q8_0 -o "$OUT/timing.gguf"

serve_bench() {  # label, requests, time-scale, serve flags...
  local label=$1 n=$2 ts=$3
  shift 3
  $RME serve "$OUT/timing.gguf" --port $PORT -t 2 --max-seq-len 512 --kv-blocks 256 \
    --trace-out "$OUT/$label-steps.csv" "$@" >"$OUT/$label.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 0.2; done
  $RME bench-serve --url http://127.0.0.1:$PORT --trace "$TRACE" --model "$OUT/timing.gguf" \
    --requests "$n" --length-scale 0.1 --max-prompt 32 --time-scale "$ts" --label "$label" \
    --out "$OUT/$label" >"$OUT/$label.txt"
  kill -INT $pid
  wait $pid || true
}

# 1. Scheduling: three loads (time scale 1 = the trace's own arrival rate at these lengths), the
#    same 16-token step budget for both policies; then the same with the default 256-token budget
#    at the highest load (large prefill chunks make every decode wait).
for ts in 1 0.5 0.25; do
  serve_bench "fcfs-$ts" "$N" "$ts" --policy fcfs --max-step-tokens 16
  serve_bench "expert-$ts" "$N" "$ts" --policy expert --max-step-tokens 16 --max-step-experts 2
  $RME bench-serve --compare "$OUT/fcfs-$ts.json" "$OUT/expert-$ts.json" \
    --out "docs/img/serving-cdf-$ts.png"
done
serve_bench "fcfs-0.25-b256" "$N" 0.25 --policy fcfs
serve_bench "expert-0.25-b256" "$N" 0.25 --policy expert --max-step-experts 2

# 1b. Both policies under an expert cache of 3 of 7 experts (disk reads, page cache bypassed).
MB50=$((7 * 22 * 3 * 1408 * 2048 * 34 / 32 / 1048576 / 2 + 8))
serve_bench "fcfs-cache50" "$N" 0.5 --policy fcfs --max-step-tokens 16 --expert-cache-mb $MB50 \
  --direct-io
serve_bench "expert-cache50" "$N" 0.5 --policy expert --max-step-tokens 16 \
  --expert-cache-mb $MB50 --direct-io

# 2. Expert cache, offline: hit rates at every capacity on rme-mini's real routing trace, 8
#    sequences decoded together, belady seeing 4 steps ahead.
ROUTING=build/results/mini/analysis-router/routing.csv
$RME cache-sim --trace "$ROUTING" --batch 8 --lookahead 4 --out "$OUT/cache-sim" \
  >"$OUT/cache-sim.txt"
cp "$OUT/cache-sim.png" docs/img/serving-cache-sim.png 2>/dev/null || true

# 3. Expert cache, online: budgets of 25/50/75/100% of the expert bytes, page cache bypassed.
EXPERT_MB=$((7 * 22 * 3 * 1408 * 2048 * 34 / 32 / 1048576))
for pct in 25 50 75 100; do
  mb=$((EXPERT_MB * pct / 100 + 8))
  serve_bench "cache-$pct" 16 1 --policy fcfs --max-step-tokens 16 --expert-cache-mb "$mb" \
    --direct-io
  serve_bench "cache-$pct-noprefetch" 16 1 --policy fcfs --max-step-tokens 16 \
    --expert-cache-mb "$mb" --direct-io --no-prefetch
done
echo "serving results in $OUT"
