#!/usr/bin/env bash
# Serving results for docs/serving.md on the timing model (a tinyllama-shaped random backbone
# driven by rme-mini's trained router): fcfs vs expert at three loads, expert-cache hit rates
# (cache-sim) and throughput under cache budgets with O_DIRECT, with and without prefetch.
# Needs build/results/mini/moe-f (scripts/reproduce-results.sh) for the trained router and its
# routing trace. Writes build/serving/ (JSON, CSV, PNG) and docs/img/serving-*.png.
# Usage: scripts/serving-results.sh [LLAMA_SERVER]. Given the path of llama.cpp's llama-server
# (built beside the project; or the LLAMA_SERVER variable), it first runs the
# dense side-by-side of docs/serving.md: one tinyllama-shaped Q8_0 GGUF under both servers, closed
# loop at 1/4/8/16 clients, ROUNDS rounds alternating the servers' order. llama-server needs a real
# tokenizer in the file: TOKENIZER_DIR (default ../shared/data/tokenizers, the Llama-2
# tokenizer.model, not shipped) is written into it with `rme convert --tokenizer`. SIDE_ONLY=1 runs
# only that part (it needs neither the trained router nor its trace).
set -euo pipefail
cd "$(dirname "$0")/.."
RME=build/bin/rme
OUT=build/serving
MOE=${MOE:-build/results/mini/moe-f}
TRACE=${TRACE:-../shared/data/traces/AzureLLMInferenceTrace_conv.csv}
N=${N:-40}
PORT=${PORT:-18090}
LLAMA_SERVER=${1:-${LLAMA_SERVER:-}}
mkdir -p "$OUT" docs/img

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

# 0. Dense side-by-side against llama-server (only with LLAMA_SERVER).
if [ -n "${LLAMA_SERVER:-}" ]; then
  DENSE=$OUT/dense-q8_0.gguf
  if [ ! -f "$DENSE" ]; then
    TOK=$OUT/tokenizer
    mkdir -p "$TOK"
    ln -sf "$(realpath "${TOKENIZER_DIR:-../shared/data/tokenizers}")/llama2_tokenizer.model" \
      "$TOK/tokenizer.model"
    $RME init-random --shape tinyllama --type q8_0 -o "$OUT/dense-raw.gguf"
    $RME convert "$OUT/dense-raw.gguf" "$DENSE" --tokenizer "$TOK"
    rm -f "$OUT/dense-raw.gguf"
  fi
  port=$((PORT + 10))
  side() {  # server (rme|llama), round
    port=$((port + 1))  # a fresh port: the last server's may still be in TIME_WAIT
    if [ "$1" = rme ]; then
      $RME serve "$DENSE" -t 2 --port $port >"$OUT/side-$1.log" 2>&1 &
    else
      "$LLAMA_SERVER" -m "$DENSE" -t 2 -np 16 -c 8192 --port $port >"$OUT/side-$1.log" 2>&1 &
    fi
    local pid=$!
    for _ in $(seq 240); do curl -sf localhost:$port/health >/dev/null && break; sleep 0.5; done
    $RME bench-serve --url http://127.0.0.1:$port --model "$DENSE" --clients 1 --requests 1 \
      --max-tokens 8 >/dev/null 2>&1  # warm-up
    for c in 1 4 8 16; do
      $RME bench-serve --url http://127.0.0.1:$port --model "$DENSE" --clients $c \
        --requests $((c == 1 ? 3 : 2 * c)) --prompt-tokens 20 --max-tokens 64 --seed "$2" \
        --label "$1-c$c-r$2" --out "$OUT/side-$1-c$c-r$2" >"$OUT/side-$1-c$c-r$2.txt"
    done
    kill -9 $pid 2>/dev/null || true  # llama-server's SIGINT handler can hang; nothing to save
    wait $pid 2>/dev/null || true
  }
  for r in $(seq "${ROUNDS:-2}"); do
    if [ $((r % 2)) = 1 ]; then side llama "$r"; side rme "$r"; else side rme "$r"; side llama "$r"; fi
  done
  grep -H throughput_tok_s "$OUT"/side-*.txt
  [ -z "${SIDE_ONLY:-}" ] || exit 0  # SIDE_ONLY=1: only this part
fi

[ -f "$OUT/timing.gguf" ] ||
  $RME moefy --random-backbone tinyllama --router "$MOE" --type q8_0 -o "$OUT/timing.gguf"

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
