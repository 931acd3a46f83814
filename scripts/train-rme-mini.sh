#!/usr/bin/env bash
# Retrains rme-mini from ../shared/data with one command: tokenizer, corpus, dense training,
# export. Resumable: re-running continues from the last checkpoint. Takes about 1.5-2 hours on
# 2 cores. Output: build/rme-mini/{tokenizer,corpus,run}; the model in build/rme-mini/run/model.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/rme-mini-corpus.sh
S=${RME_DATA:-../shared/data}
W=${RME_WORK:-build/rme-mini}
[ -x build/bin/rme ] || scripts/build.sh
mkdir -p "$W"
if [ ! -f "$W/tokenizer/tokenizer.model" ]; then
  build/bin/rme tokenizer-train --vocab 4096 --out "$W/tokenizer" --input \
    "$S/stories/tinystories_train_head.txt" "$S/books/pride_and_prejudice_pg1342.txt" \
    "$S/books/war_and_peace.txt" "$S/books/tinyshakespeare.txt" "$S/encyclopedic/wiki.valid.raw" \
    "$S/qa_dialogue/stackexchange_ai_train.txt" "$S/qa_dialogue/stackexchange_cardano_train.txt" \
    "$S/qa_dialogue/topicalchat_valid.txt" "$S/math/gsm8k_train.jsonl" "$S/code/llamacpp_cxx_train.txt"
fi
if [ ! -f "$W/corpus/manifest.json" ]; then
  rme_mini_corpus build/bin/rme "$W/tokenizer" "$W/corpus" "$S"
fi
build/bin/rme train --config configs/rme-mini.json --corpus "$W/corpus" --out "$W/run" --export-type bf16
echo "rme-mini: $W/run/model (copy it to data/models/rme-mini to ship it)"
