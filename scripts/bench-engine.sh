#!/usr/bin/env bash
# Engine speed on random-weight models of real shapes (no large model can be downloaded here):
# writes build/bench/*.gguf once, runs `rme bench --json` on each, and prints a Markdown table
# (docs/performance.md). 2 threads by default (RME_THREADS). About 20 minutes on 2 cores; add
# llama2-7b:f16 to RME_MODELS for the 13.5 GB F16 row (needs that much free disk and page cache).
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
echo "| model | type | pp128 t/s | pp512 t/s | tg128 t/s | MB/token | effective GB/s | read GB/s | fraction |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for m in $MODELS; do
  shape=${m%%:*}
  type=${m##*:}
  j=$($RME bench "$W/$shape-$type.gguf" -t "$T" --reps "$REPS" --pp 128 --pp 512 --tg 128 --json)
  g() { echo "$j" | sed -E "s/.*\"$1\": ([0-9.e+-]+).*/\1/"; }
  printf "| %s | %s | %.1f | %.1f | %.2f | %.0f | %.1f | %.1f | %.0f%% |\n" "$shape" "$type" \
    "$(g pp128_tps)" "$(g pp512_tps)" "$(g tg128_tps)" "$(awk -v b="$(g bytes_per_token)" 'BEGIN{print b/1e6}')" \
    "$(g effective_gbs)" "$(g read_bandwidth_gbs)" "$(awk -v f="$(g bandwidth_fraction)" 'BEGIN{print 100*f}')"
done
