#!/usr/bin/env bash
# Prints the demo's summary from the files scripts/demo.sh left in OUT (plain bash + awk: no Python needed).
set -euo pipefail
OUT=$1
# json_field FILE ROW FIELD: the string or number value of FIELD in line ROW of a JSON Lines file.
json_field() {
  awk -v row="$2" -v key="\"$3\"" 'NR == row {
    i = index($0, key ":"); if (!i) { print ""; exit }
    s = substr($0, i + length(key) + 1); sub(/^ */, "", s)
    if (substr(s, 1, 1) != "\"") { match(s, /^[-0-9.eE+a-z]+/); print substr(s, 1, RLENGTH); exit }
    out = ""; for (j = 2; j <= length(s); j++) { c = substr(s, j, 1)
      if (c == "\\") { j++; c = substr(s, j, 1); if (c == "n") c = " "; else if (c == "t") c = " "; out = out c; continue }
      if (c == "\"") break; out = out c }
    print out; exit }' "$1"
}
csv_last() { # csv_last FILE COLUMN: the last non-empty value of COLUMN
  awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    c && $c != "" { v = $c } END { print v }' "$1"
}
acc=$(json_field "$OUT/rm-eval-summary.json" 1 accuracy)
before=$(json_field "$OUT/before.summary.json" 1 reward_mean)
after=$(json_field "$OUT/after.summary.json" 1 reward_mean)
kl=$(csv_last "$OUT/ppo/training_log.csv" objective/kl)
echo "held-out reward-model accuracy (100 pairs):   $acc"
echo "mean reward of held-out generations, before:  $before"
echo "mean reward of held-out generations, after:   $after"
echo "final KL to the reference (objective/kl):     $kl"
for row in 1 2; do
  echo
  echo "prompt:  $(json_field "$OUT/before.jsonl" $row prompt)"
  echo "  before PPO: $(json_field "$OUT/before.jsonl" $row completion)   [reward $(json_field "$OUT/before.scores.jsonl" $row score)]"
  echo "  after PPO:  $(json_field "$OUT/after.jsonl" $row completion)   [reward $(json_field "$OUT/after.scores.jsonl" $row score)]"
done
