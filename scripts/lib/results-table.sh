# Sourced by scripts/reproduce-results.sh: cached bits-per-byte evaluations, seeded table rows
# (mean over seeds, spread = max - min of the per-seed means) and win/tie/loss comparisons.
# Needs RME and W (the rme binary and the work directory; exported, for run_bpb_queue's
# workers). Every measured step appends "name seconds" to $W/times.tsv, so a resumed run still
# reports the whole compute.

# timed NAME CMD... -> runs CMD, records its wall time.
timed() {
  local name=$1 t0 rc=0
  shift
  t0=$(date +%s)
  "$@" || rc=$?
  echo "$name $(($(date +%s) - t0))" >> "$W/times.tsv"
  return $rc
}

# bpb MODEL ROUTING FILE [DENSE] -> bits per byte of MODEL on FILE (cached in $W/cache).
# ROUTING: dense, router, random, layer-gate, oracle (needs DENSE); NAME@K routes top-K.
bpb() {
  local model=$1 routing=$2 file=$3 dense=${4:-} key out args
  key=$(echo "$model-$routing-$file" | tr '/:@' '___')
  out="$W/cache/$key.json"
  mkdir -p "$W/cache"
  if [ ! -s "$out" ] && [ -n "${BPB_QUEUE:-}" ]; then
    # Collecting: note the evaluation for run_bpb_queue, answer a placeholder.
    [ -f "$model/config.json" ] && echo "$model $routing $file ${dense:--}" >> "$BPB_QUEUE"
    echo 0
    return
  fi
  if [ ! -s "$out" ]; then
    args=(perplexity "$model" -f "$file" --ctx 256 --json --threads "${BPB_THREADS:-0}")
    if [ "$routing" != dense ]; then
      args+=(--routing "${routing%@*}")
      [[ $routing == *@* ]] && args+=(--route-top-k "${routing#*@}")
      [ "${routing%@*}" = oracle ] && args+=(--dense "$dense")
    fi
    timed eval "$RME" "${args[@]}" > "$out.tmp" 2>/dev/null
    mv "$out.tmp" "$out"
  fi
  sed -E 's/.*"bits_per_byte": ([0-9.]+).*/\1/' "$out"
}

# run_bpb_queue QUEUE LANES -> runs the evaluations noted in QUEUE (by bpb with BPB_QUEUE set),
# LANES at a time with one thread each (two one-thread runs get more from two cores than one
# two-thread run).
run_bpb_queue() {
  local queue=$1 lanes=$2
  [ -s "$queue" ] || return 0
  sort -u "$queue" | BPB_THREADS=1 xargs -P "$lanes" -L 1 bash -c \
    'source scripts/lib/results-table.sh; bpb "$1" "$2" "$3" "${4#-}" > /dev/null' _
  rm -f "$queue"
}

header() {
  local h="| model |" s="|---|"
  for d in "$@"; do h="$h $d |"; s="$s---:|"; done
  echo "$h mean | spread | n |"
  echo "$s---:|---:|---:|"
}

# srow ID LABEL MODEL ROUTING DENSE EVALDIR DOMAINS... -> a markdown row. MODEL may hold "{s}",
# replaced by each of $SEEDS (one model per seed); each domain column is the mean over seeds,
# "mean" the mean over domains and seeds, "spread" max - min of the per-seed means. The row's
# per-seed means also go to $W/summary/ID for compare.
srow() {
  local id=$1 label=$2 model=$3 routing=$4 dense=$5 dir=$6
  shift 6
  local seeds=1 s d line="| $label |" vals=""
  [[ $model == *"{s}"* ]] && seeds=$SEEDS
  mkdir -p "$W/summary"
  : > "$W/summary/$id"
  for s in $seeds; do
    local m=${model//\{s\}/$s} sum=0 n=0 v
    for d in "$@"; do
      v=$(bpb "$m" "$routing" "$dir/$d.txt" "$dense")
      vals="$vals $d=$v"
      sum=$(awk -v a="$sum" -v b="$v" 'BEGIN{print a+b}')
      n=$((n + 1))
    done
    awk -v a="$sum" -v n="$n" 'BEGIN{printf "%.6f\n", a/n}' >> "$W/summary/$id"
  done
  for d in "$@"; do
    line="$line $(echo "$vals" | tr ' ' '\n' | sed -n "s/^$d=//p" |
      awk '{s+=$1; n++} END{printf "%.4f", s/n}') |"
  done
  echo "$line $(awk '{s+=$1; if(NR==1||$1<lo)lo=$1; if(NR==1||$1>hi)hi=$1; n++}
    END{if(n>1) printf "**%.4f** | %.4f | %d", s/n, hi-lo, n; else printf "**%.4f** | - | 1", s}' \
    "$W/summary/$id") |"
}

# compare ID_A ID_B TEXT -> a markdown row: mean(B) - mean(A) and a verdict for B against A.
# A difference within the larger spread of the two (the seeded side's, when one is a single
# run) is a tie; lower bits per byte wins.
compare() {
  awk -v text="$3" '
    FNR == 1 { f++ }
    { v[f, FNR] = $1; n[f] = FNR }
    END {
      for (i = 1; i <= 2; i++) {
        s = 0; lo = v[i, 1]; hi = v[i, 1]
        for (j = 1; j <= n[i]; j++) { s += v[i, j]; if (v[i, j] < lo) lo = v[i, j]; if (v[i, j] > hi) hi = v[i, j] }
        m[i] = s / n[i]; r[i] = hi - lo
      }
      d = m[2] - m[1]; tol = r[1] > r[2] ? r[1] : r[2]
      verdict = (d < -tol) ? "**wins**" : (d > tol) ? "loses" : "tie"
      printf "| %s | %+.4f | %.4f | %s |\n", text, d, tol, verdict
    }' "$W/summary/$1" "$W/summary/$2"
}

# seed_plot PNG TITLE ID=LABEL... -> a PNG of each row's mean bits per byte with a bar from its
# smallest to its largest per-seed mean (rows in the order given, top to bottom).
seed_plot() {
  local png=$1 title=$2 dat i=0 arg
  shift 2
  dat=$(mktemp)
  for arg in "$@"; do
    awk -v i="$i" -v label="${arg#*=}" '{s+=$1; if(NR==1||$1<lo)lo=$1; if(NR==1||$1>hi)hi=$1; n++}
      END{printf "%d %.6f %.6f %.6f \"%s\"\n", i, s/n, lo, hi, label}' "$W/summary/${arg%%=*}" >> "$dat"
    i=$((i + 1))
  done
  gnuplot <<EOF || echo "seed_plot: gnuplot failed; $png not written" >&2
set terminal pngcairo size 900,$((120 + 34 * i)) font ",10"
set output "$png"
set title "$title"
set xlabel "bits per byte on held-out text (lower is better); bar: smallest to largest seed"
set yrange [$i:-1]
set ytics scale 0
set grid xtics
unset key
plot "$dat" using 2:1:3:4:ytic(5) with xerrorbars pointtype 7 pointsize 1.2 linewidth 2
EOF
  rm -f "$dat"
}
