#!/usr/bin/env bash
# Per-domain perplexity and bits per byte of one or more models on a corpus's held-out text, as a
# Markdown table. Both models see exactly the same text: the first MAX_BYTES of each domain's
# NAME.valid.txt, cut at a line break.
#   scripts/eval-bpb.sh CORPUS_DIR "label=MODEL [--tokenizer T]" ...
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=$1; shift
max_bytes=${MAX_BYTES:-300000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '| domain | bytes |'; for m in "$@"; do printf ' %s ppl | %s bits/byte |' "${m%%=*}" "${m%%=*}"; done; echo
printf '|---|---|'; for m in "$@"; do printf -- '---|---|'; done; echo
for f in "$corpus"/*.valid.txt; do
  d=$(basename "$f" .valid.txt)
  head -c "$max_bytes" "$f" > "$tmp/$d.txt"
  if [ "$(stat -c %s "$f")" -gt "$max_bytes" ]; then  # drop the partial last line
    sed -i '$d' "$tmp/$d.txt"
  fi
  printf '| %s | %s |' "$d" "$(stat -c %s "$tmp/$d.txt")"
  for m in "$@"; do
    spec=${m#*=}
    # shellcheck disable=SC2086
    out=$("${RME:-build/bin/rme}" perplexity $spec -f "$tmp/$d.txt" --ctx 256 --json 2>/dev/null)
    ppl=$(sed -E 's/.*"perplexity": ([0-9.]+).*/\1/' <<<"$out")
    bpb=$(sed -E 's/.*"bits_per_byte": ([0-9.]+).*/\1/' <<<"$out")
    printf ' %.2f | %.3f |' "$ppl" "$bpb"
  done
  echo
done
