#!/usr/bin/env bash
# The decode-setting sweep of issue 35 on dev (rule: dev/RULE.txt), one setting a run, accumulated in one JSON.
# It needs the code of commit c13e1d1 (--correction-steps left with the corrector in 0b2cfd5).
# usage: bash benchmarks/results/decode-setting/corrector/sweep.sh SPLIT MODEL OUT "K R C" ["K R C" ...]
# (K candidates, R refinement rounds, C corrector rounds; "1 0 0" is greedy)
set -euo pipefail
split=$1 model=$2 out=$3
shift 3
for setting in "$@"; do
  read -r k r c <<<"$setting"
  reuse=()
  [ -f "$out/decode_accuracy.json" ] && reuse=(--reuse "$out/decode_accuracy.json")
  python -m benchmarks.decode_accuracy --models "$model" --split "$split" --limit 60 --buckets 8 16 32 \
    --output-dir "$out" --candidates "$k" --refinement-steps "$r" --correction-steps "$c" "${reuse[@]}"
done
