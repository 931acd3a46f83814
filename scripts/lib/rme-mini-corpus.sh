# Sourced by scripts: the seven-domain rme-mini corpus from ../shared/data, with the official
# validation splits where a source has them.
# rme_mini_corpus RME_BIN TOKENIZER_DIR OUT_DIR DATA_DIR
rme_mini_corpus() {
  local rme=$1 tok=$2 out=$3 S=$4
  "$rme" corpus --tokenizer "$tok" --out "$out" \
    --domain stories="$S/stories/tinystories_train_head.txt" --valid stories="$S/stories/tinystories_valid_head.txt" \
    --domain books="$S/books/pride_and_prejudice_pg1342.txt,$S/books/war_and_peace.txt,$S/books/tinyshakespeare.txt" \
    --domain wiki="$S/encyclopedic/wiki.valid.raw" --valid wiki="$S/encyclopedic/wiki.test.raw" \
    --domain qa="$S/qa_dialogue/stackexchange_ai_train.txt,$S/qa_dialogue/stackexchange_cardano_train.txt" \
    --valid qa="$S/qa_dialogue/stackexchange_ai_valid.txt,$S/qa_dialogue/stackexchange_cardano_valid.txt" \
    --domain dialogue="$S/qa_dialogue/topicalchat_valid.txt" --valid dialogue="$S/qa_dialogue/topicalchat_test.txt" \
    --domain math="$S/math/gsm8k_train.jsonl" --valid math="$S/math/gsm8k_test.jsonl" \
    --domain code="$S/code/llamacpp_cxx_train.txt" --valid code="$S/code/llamacpp_cxx_valid.txt"
}
