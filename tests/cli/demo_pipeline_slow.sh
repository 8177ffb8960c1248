#!/usr/bin/env bash
# The `make demo` pipeline at reduced size (issue 9; also issue 7's "BERT reward model" end to end): init, sft,
# reward, generate, ppo against a BERT reward model with a GPT-2 policy (different tokenizers), summary.
# Asserts: the reward model's held-out accuracy >= 0.95, the mean reward of held-out generations rises after PPO,
# objective/scores rises over the PPO run while objective/kl stays finite, and every report.html holds an SVG.
# ("slow" in the name keeps it out of the sanitizer run; the plain suite runs it.)
set -euo pipefail
RLHF=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
W=$(mktemp -d -t rlhf-demo.XXXXXX)
trap 'rm -rf "$W"' EXIT
RLHF=$RLHF DEMO_DIR=$W/demo DEMO_SFT_EPOCHS=2 DEMO_PPO_EPISODES=640 THREADS=2 scripts/demo.sh >"$W/log" 2>&1 ||
  { tail -n 30 "$W/log"; echo "0 passed, 1 failed"; exit 1; }
D=$W/demo
num() { sed -n "s/.*\"$2\": *\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }
acc=$(num "$D/rm-eval-summary.json" accuracy)
before=$(num "$D/before.summary.json" reward_mean)
after=$(num "$D/after.summary.json" reward_mean)
# objective/scores: mean of the first two and of the last two logged updates
read -r first last kl < <(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "objective/scores") s = i; if ($i == "objective/kl") k = i }; next }
  { v[++n] = $s; kl = $k } END { print (v[1] + v[2]) / 2, (v[n] + v[n - 1]) / 2, kl }' "$D/ppo/training_log.csv")
echo "held-out accuracy $acc; mean reward before $before after $after; objective/scores $first -> $last; final kl $kl"
fails=0
awk -v a="$acc" 'BEGIN { exit !(a >= 0.95) }' || { echo "FAIL reward model accuracy $acc < 0.95"; fails=$((fails + 1)); }
awk -v b="$before" -v a="$after" 'BEGIN { exit !(a > b + 0.2) }' || { echo "FAIL mean reward did not rise by 0.2 ($before -> $after)"; fails=$((fails + 1)); }
awk -v f="$first" -v l="$last" 'BEGIN { exit !(l > f + 0.2) }' || { echo "FAIL objective/scores did not rise ($first -> $last)"; fails=$((fails + 1)); }
awk -v k="$kl" 'BEGIN { exit !(k == k + 0 && k > -1e9 && k < 1e9) }' || { echo "FAIL objective/kl not finite: $kl"; fails=$((fails + 1)); }
for r in rm sft ppo; do grep -q '<svg' "$D/$r/report.html" || { echo "FAIL $r/report.html has no inline SVG"; fails=$((fails + 1)); }; done
echo "$((7 - fails)) passed, $fails failed"
[ "$fails" = 0 ]
