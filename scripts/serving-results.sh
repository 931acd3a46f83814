#!/usr/bin/env bash
# Serving results for docs/serving.md. The Read-ME MoE "timing model" is a tinyllama-shaped random
# backbone driven by rme-mini's trained router (build it once: scripts/demo.sh, or
# scripts/reproduce-results.sh; MOE names the MoE whose router it takes). Every load draws its
# prompts at random (seeded) across the held-out text of all seven domains: mixed traffic.
#   1. Closed loop at 1/4/8/16 clients: the MoE timing model under rme serve, the dense
#      tinyllama Q8_0 under rme serve and (given LLAMA_SERVER) under llama.cpp's llama-server,
#      ROUNDS rounds alternating the order.
#   2. The Azure trace replayed at three loads: fcfs vs expert (and expert capped at 2 experts per
#      step) on the timing model, same step budget; and the dense model under both servers.
#   3. Expert cache on mixed traffic (8 clients, O_DIRECT): 25/50/75/100% budgets, fcfs + lru vs
#      expert + belady, and prefetch off at 50%.
#   4. Offline hit rates (rme cache-sim) on rme-mini's routing trace, file order and mixed.
#   5. Part 3 with Q4_0 experts (half the bytes per load) at 100/50% budgets.
# Usage: scripts/serving-results.sh [LLAMA_SERVER]. LLAMA_SERVER: llama.cpp's llama-server, built
# beside the project (never inside); without it its columns are left out. IK_LLAMA_SERVER:
# ik_llama.cpp's llama-server (likewise built beside), run with -rtr (weights repacked at load,
# its fastest CPU setting) as the "ik" columns. llama-server needs a real
# tokenizer in the dense file: TOKENIZER_DIR (default ../shared/data/tokenizers, the Llama-2
# tokenizer.model, not shipped) is written into it with `rme convert --tokenizer`.
# PARTS=1,2,3,4,5 picks parts. About 90 minutes for everything on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
RME=build/bin/rme
OUT=build/serving
MOE=${MOE:-build/demo/moe-r}
[ -d "$MOE" ] || MOE=build/results/mini/moe-f
TRACE=${TRACE:-../shared/data/traces/AzureLLMInferenceTrace_conv.csv}
ROUTING=${ROUTING:-build/results/mini/analysis-router/routing.csv}
N=${N:-40}
ROUNDS=${ROUNDS:-2}
PARTS=${PARTS:-1,2,3,4,5}
LLAMA_SERVER=${1:-${LLAMA_SERVER:-}}
IK_LLAMA_SERVER=${IK_LLAMA_SERVER:-}
PORT=${PORT:-18090}
mkdir -p "$OUT" docs/img
part() { [[ ",$PARTS," == *",$1,"* ]]; }

TIMING=$OUT/timing.gguf
[ -f "$TIMING" ] || $RME moefy --random-backbone tinyllama --router "$MOE" --type q8_0 -o "$TIMING"
TIMING4=$OUT/timing-q4_0.gguf
if part 5 && [ ! -f "$TIMING4" ]; then
  $RME moefy --random-backbone tinyllama --router "$MOE" --type q4_0 -o "$TIMING4"
fi
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

PID=
start() {  # server (llama|ik|rme|moe), serve flags...: starts it on a fresh port, waits, warms it up
  local who=$1
  shift
  PORT=$((PORT + 1))  # the last server's port may still be in TIME_WAIT
  MODEL=$DENSE
  [ "$who" = moe ] && MODEL=$TIMING
  [ "$who" = moe4 ] && MODEL=$TIMING4
  case $who in
    llama) "$LLAMA_SERVER" -m "$MODEL" -t 2 -np 16 -c 8192 --port $PORT "$@" \
             >"$OUT/server-$who.log" 2>&1 & ;;
    ik) "$IK_LLAMA_SERVER" -m "$MODEL" -t 2 -np 16 -c 8192 -rtr --port $PORT "$@" \
          >"$OUT/server-$who.log" 2>&1 & ;;
    *) $RME serve "$MODEL" -t 2 --port $PORT "$@" >"$OUT/server-$who.log" 2>&1 & ;;
  esac
  PID=$!
  for _ in $(seq 240); do curl -sf localhost:$PORT/health >/dev/null && break; sleep 0.5; done
  $RME bench-serve --url http://127.0.0.1:$PORT --model "$MODEL" --clients 1 --requests 1 \
    --max-tokens 8 >/dev/null 2>&1
}
stop() {
  kill -9 "$PID" 2>/dev/null || true  # llama-server's SIGINT handler can hang; nothing to save
  wait "$PID" 2>/dev/null || true
}
closed() {  # label clients: 2K requests (3 for one client), 20-token prompts, 64 tokens out
  $RME bench-serve --url http://127.0.0.1:$PORT --model "$MODEL" --clients "$2" \
    --requests $(($2 == 1 ? 3 : 2 * $2)) --prompt-tokens 20 --max-tokens 64 --seed "${SEED:-1}" \
    --label "$1" --out "$OUT/$1" >"$OUT/$1.txt"
}
replay() {  # label time-scale
  $RME bench-serve --url http://127.0.0.1:$PORT --trace "$TRACE" --model "$MODEL" \
    --requests "$N" --length-scale 0.1 --max-prompt 32 --time-scale "$2" --label "$1" \
    --out "$OUT/$1" >"$OUT/$1.txt"
}
servers() {  # the servers of a round, order alternating
  local s="moe rme"
  [ -n "$LLAMA_SERVER" ] && s="llama $s"
  [ -n "$IK_LLAMA_SERVER" ] && s="ik $s"
  if [ $(($1 % 2)) = 1 ]; then echo $s; else echo $s | tr ' ' '\n' | tac | tr '\n' ' '; fi
}

if part 1; then
  for r in $(seq "$ROUNDS"); do
    for who in $(servers "$r"); do
      start "$who" $([ "$who" = moe ] && echo --policy expert)
      for c in 1 4 8 16; do SEED=$r closed "closed-$who-c$c-r$r" "$c"; done
      stop
    done
  done
  grep -H throughput_tok_s "$OUT"/closed-*.txt
fi

if part 2; then
  # Time scale 1 = the trace's own arrival rate at these lengths; 0.5 and 0.25 double and
  # quadruple it. Both policies get the same 16-token step budget.
  for r in $(seq "$ROUNDS"); do
    for ts in 1 0.5 0.25; do
      for pol in $([ $((r % 2)) = 1 ] && echo "fcfs expert cap2" || echo "cap2 expert fcfs"); do
        # cap2: the expert policy held to 2 distinct experts per step (--max-step-experts)
        if [ "$pol" = cap2 ]; then flags="--policy expert --max-step-experts 2"; else
          flags="--policy $pol"; fi
        start moe $flags --max-step-tokens 16 --trace-out "$OUT/replay-$pol-$ts-r$r.csv"
        replay "replay-$pol-$ts-r$r" "$ts"
        stop
      done
      for who in $([ -n "$LLAMA_SERVER" ] && echo llama) $([ -n "$IK_LLAMA_SERVER" ] && echo ik) rme; do
        start "$who"
        replay "replay-$who-$ts-r$r" "$ts"
        stop
      done
    done
  done
  for ts in 1 0.5 0.25; do
    $RME bench-serve --compare "$OUT/replay-fcfs-$ts-r1.json" "$OUT/replay-expert-$ts-r1.json" \
      --out "docs/img/serving-cdf-$ts.png"
  done
fi

cache_budgets() {  # server (moe|moe4) label-prefix bytes-per-32-weights budgets...
  local who=$1 prefix=$2 bytes=$3
  shift 3
  # Each of the 7 experts: 22 layers of gate/up/down at 1408 x 2048.
  local expert_mb=$((7 * 22 * 3 * 1408 * 2048 * bytes / 32 / 1048576))
  for r in $(seq "$ROUNDS"); do
    pols="fcfs-lru expert-belady"
    [ $((r % 2)) = 0 ] && pols="expert-belady fcfs-lru"
    for pct in "$@"; do
      mb=$((expert_mb * pct / 100 + 8))
      flags="--expert-cache-mb $mb --direct-io"
      [ "$pct" = 100 ] && flags=""  # all resident, read in place
      for pol in $pols; do
        label=$prefix-$pct-$pol-r$r
        [ -f "$OUT/$label.txt" ] && continue  # kept from an interrupted run
        start "$who" --policy "${pol%-*}" --eviction "${pol#*-}" $flags
        closed "$label" 8
        stop
      done
    done
    label=$prefix-50-expert-belady-noprefetch-r$r
    if [ ! -f "$OUT/$label.txt" ]; then
      start "$who" --policy expert --eviction belady --expert-cache-mb $((expert_mb / 2 + 8)) \
        --direct-io --no-prefetch
      closed "$label" 8
      stop
    fi
  done
}

part 3 && cache_budgets moe cache 34 100 75 50 25  # Q8_0: 34 bytes per 32 weights

if part 4; then
  if [ ! -f "$ROUTING" ]; then  # the router's routing of the shipped held-out text, per token
    ROUTING=$OUT/routing/routing.csv
    [ -f "$ROUTING" ] || $RME analyze-routing "$MOE" --routing router --tokens 16384 \
      $(for d in books code dialogue math qa stories wiki; do echo "--domain $d=data/eval/$d.txt"; done) \
      --out "$OUT/routing" >"$OUT/routing.txt"
  fi
  for order in file mixed; do
    $RME cache-sim --trace "$ROUTING" --batch 8 --lookahead 4 --order $order \
      --out "$OUT/cache-sim-$order" >"$OUT/cache-sim-$order.txt"
    cp "$OUT/cache-sim-$order.png" "docs/img/serving-cache-sim-$order.png" 2>/dev/null || true
  done
fi
part 5 && cache_budgets moe4 cache-q4_0 18 100 50  # Q4_0: 18 bytes per 32 weights
echo "serving results in $OUT"
