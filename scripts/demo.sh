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

step "1/5 profile: mean |down_proj input| per domain, layer and channel (data/calibration)"
[ -f "$W/stats.safetensors" ] || $RME profile $DENSE --tokens 8192 --out "$W/stats.safetensors" \
  $(for d in $DOMAINS; do echo "--domain $d=data/calibration/$d.txt"; done)
step "2/5 moefy: each domain keeps its top 50% channels; common ones = shared expert"
[ -f "$W/moe/config.json" ] || $RME moefy $DENSE --stats "$W/stats.safetensors" --out "$W/moe"
step "3/5 train-router: distill the pre-gating router from the dense model's activations"
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

step "4/5 dense vs MoE: bits per byte on held-out text (data/eval; lower is better)"
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

step "5/5 generate with the MoE (router picks each token's expert before the backbone runs)"
$RME generate "$MOE" --prompt "Once upon a time" --new-tokens 120 --temp 0
echo
$RME generate "$MOE" --prompt "Question: Tom has 3 apples and buys 5 more. How many apples does he have?" \
  --new-tokens 60 --temp 0
echo
echo
echo "MoE checkpoint: $MOE (docs/formats.md); full results: docs/results.md"
