#!/usr/bin/env bash
# tests/scripts: scripts/refactor.sh end to end on the shipped rme-mini with tiny settings (every
# stage, the plan's expected times, the evaluation table with numbers in every cell), then the
# same command again: every stage is found done and nothing is recomputed.
#   refactor_test.sh SOURCE_DIR RME_BINARY
set -euo pipefail
root=$1
export RME=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cal=$root/data/calibration
run() {
  "$root/scripts/refactor.sh" "$root/data/models/rme-mini" "stories=$cal/stories.txt" \
    "code=$cal/code.txt" --out "$work/w" --router-steps 10 --target-tokens 4096 \
    --finetune-steps 2 --rounds 1 --profile-tokens 1024 --eval-bytes 5000 --threads 2
}
run > "$work/first.log" 2>&1 || { cat "$work/first.log"; exit 1; }
# The plan printed before it starts gives every timed stage a figure, fine-tuning included.
for st in profile moefy targets finetune; do
  grep -qE "^  $st +[0-9]+m " "$work/first.log" || {
    echo "no planned time for $st"; cat "$work/first.log"; exit 1; }
done
for d in code stories; do
  row=$(grep "^| $d |" "$work/w/eval.md") || { echo "no row for $d"; cat "$work/w/eval.md"; exit 1; }
  # domain, bytes, then ppl and bits/byte for dense, moe and random: 8 numbers
  n=$(tr '|' '\n' <<<"$row" | grep -cE '^ *[0-9]+(\.[0-9]+)? *$')
  [ "$n" -eq 7 ] || { echo "row '$row' has $n numbers, 7 expected"; exit 1; }
done
for f in stats.safetensors moe/config.json moe-r/config.json moe-f/config.json \
  targets/manifest.json; do
  [ -e "$work/w/$f" ] || { echo "missing $f"; exit 1; }
done
cp "$work/w/stages.tsv" "$work/stages.before"
run > "$work/second.log" 2>&1 || { cat "$work/second.log"; exit 1; }
cmp "$work/w/stages.tsv" "$work/stages.before" || { echo "a stage ran again"; exit 1; }
echo "refactor_test: passed"
