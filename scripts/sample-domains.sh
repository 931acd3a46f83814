#!/usr/bin/env bash
# Three sample generations per domain from a model, as Markdown (for model cards).
#   scripts/sample-domains.sh MODEL [generate options...]
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1; shift
declare -a P=(
  "stories|Once upon a time"
  "stories|Lily and her dog went to the park."
  "stories|One day, a little boy named Tom"
  "books|It is a truth universally acknowledged"
  "books|Prince Andrew looked at"
  "books|ROMEO:"
  "wiki| = History of Paris = "
  "wiki|The battle of"
  "wiki|The species was first described"
  "qa|Question: What is the difference between AI and machine learning?"
  "qa|Question: How do I stake ADA with a hardware wallet?"
  "qa|Question: Why do neural networks need activation functions?"
  "dialogue|A: Do you like football?"
  "dialogue|A: Have you seen any good movies lately?"
  "dialogue|A: Did you know that the president"
  "math|Question: Tom has 3 apples and buys 5 more. How many apples does he have?"
  "math|Question: A train travels 60 miles per hour for 3 hours. How far does it go?"
  "math|Question: Sara earns \$12 an hour. How much does she earn in 8 hours?"
  "code|static int"
  "code|#include <"
  "code|struct llama_"
)
for p in "${P[@]}"; do
  d=${p%%|*}; prompt=${p#*|}
  prompt=${prompt//\\n/$'\n'}
  out=$(build/bin/rme generate "$model" --prompt "$prompt" --new-tokens 64 "$@" 2>/dev/null)
  printf '**%s** — `%s`\n\n```text\n%s\n```\n\n' "$d" "${prompt//$'\n'/\\n}" "$out"
done
