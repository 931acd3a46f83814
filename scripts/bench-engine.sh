#!/usr/bin/env bash
# Engine speed on random-weight models of real shapes (no large model can be downloaded here):
# writes build/bench/*.gguf once, runs `rme bench --json` on each, and prints a Markdown table
# (docs/performance.md). 2 threads by default (RME_THREADS). About 20 minutes on 2 cores; add
# llama2-7b:f16 to RME_MODELS for the 13.5 GB F16 row (needs that much free disk and page cache).
# Peers on the same files, threads and run, each built beside the project (never inside), when
# named: LLAMA_BENCH (llama.cpp's llama-bench) and IK_LLAMA_BENCH (ik_llama.cpp's, timed with
# -rtr 0 and -rtr 1) add a table of their pp128 / pp512 / tg128 beside rme's; rme and the peers
# alternate order model by model. RME_BF16=1 runs rme with its opt-in bf16 products (F16/F32
# matrices as bf16 on AVX512-BF16 CPUs: the counterpart of ik's -rtr 1 F16 row; see
# docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/rme ] || scripts/build.sh
RME=build/bin/rme
W=${RME_WORK:-build/bench}
T=${RME_THREADS:-2}
REPS=${RME_REPS:-3}
mkdir -p "$W"
# SHAPE[+moeN]:TYPE; +moe8 = a Read-ME MoE of that shape (8 experts + shared, half the FFN
# active per token, random router), for the MoE speed target.
MODELS=${RME_MODELS:-"tinyllama:f16 tinyllama:q8_0 tinyllama:q4_0 llama2-7b:q4_0 llama2-7b:q8_0 tinyllama+moe8:q8_0"}
for m in $MODELS; do
  shape=${m%%:*}
  type=${m##*:}
  f="$W/$shape-$type.gguf"
  base=${shape%%+*}
  extra=""
  case "$shape" in *+moe*) extra="--experts ${shape##*+moe}" ;; esac
  [ -f "$f" ] || $RME init-random --shape "$base" --type "$type" $extra -o "$f" >&2
done
# peer BIN MODEL [flags]: one llama-bench row, "pp128 / pp512 / tg128" t/s. avg_ts is read
# as the third field from the end of each CSV line: quoted values earlier in the line hold commas.
peer() {
  "$1" -m "$2" -t "$T" -p 128,512 -n 128 -r "$REPS" -o csv "${@:3}" 2>/dev/null |
    awk -F, 'NR > 1 { v = $(NF - 2); gsub(/"/, "", v); r = r (r == "" ? "" : " / ") sprintf("%.1f", v) }
             END { print r }'
}
PEERS=""
[ -n "${LLAMA_BENCH:-}" ] && PEERS="$PEERS llama"
[ -n "${IK_LLAMA_BENCH:-}" ] && PEERS="$PEERS ik-rtr0 ik-rtr1"
declare -A PEER_ROW
run_peers() {  # model file (dense models only: the peers do not run Read-ME MoE files)
  case "$1" in *+moe*) return 0 ;; esac
  for p in $PEERS; do
    case $p in
      llama) PEER_ROW[$1:$p]=$(peer "$LLAMA_BENCH" "$2") ;;
      ik-rtr0) PEER_ROW[$1:$p]=$(peer "$IK_LLAMA_BENCH" "$2" -rtr 0) ;;
      ik-rtr1) PEER_ROW[$1:$p]=$(peer "$IK_LLAMA_BENCH" "$2" -rtr 1) ;;
    esac
  done
}
echo "| model | type | pp128 t/s | pp512 t/s | tg128 t/s | MB/token | effective GB/s | read GB/s | fraction |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
n=0
for m in $MODELS; do
  shape=${m%%:*}
  type=${m##*:}
  n=$((n + 1))
  # Peers first on odd rows, after rme on even ones (a busy machine's drift falls on both).
  [ $((n % 2)) = 1 ] && run_peers "$m" "$W/$shape-$type.gguf"
  j=$($RME bench "$W/$shape-$type.gguf" -t "$T" --reps "$REPS" --pp 128 --pp 512 --tg 128 --json)
  [ $((n % 2)) = 0 ] && run_peers "$m" "$W/$shape-$type.gguf"
  g() { echo "$j" | sed -E "s/.*\"$1\": ([0-9.e+-]+).*/\1/"; }
  printf "| %s | %s | %.1f | %.1f | %.2f | %.0f | %.1f | %.1f | %.0f%% |\n" "$shape" "$type" \
    "$(g pp128_tps)" "$(g pp512_tps)" "$(g tg128_tps)" "$(awk -v b="$(g bytes_per_token)" 'BEGIN{print b/1e6}')" \
    "$(g effective_gbs)" "$(g read_bandwidth_gbs)" "$(awk -v f="$(g bandwidth_fraction)" 'BEGIN{print 100*f}')"
done
if [ -n "$PEERS" ]; then
  echo
  echo "| model | type |$(for p in $PEERS; do printf ' %s pp128 / pp512 / tg128 |' "$p"; done)"
  echo "|---|---|$(for p in $PEERS; do printf -- '---|'; done)"
  for m in $MODELS; do
    case "$m" in *+moe*) continue ;; esac  # peers run dense models only
    printf "| %s | %s |" "${m%%:*}" "${m##*:}"
    for p in $PEERS; do printf " %s |" "${PEER_ROW[$m:$p]}"; done
    echo
  done
fi
