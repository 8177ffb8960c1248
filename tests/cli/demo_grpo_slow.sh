#!/bin/bash
# `make demo-grpo` end to end (scripts/demo_grpo.sh, ~30 s): SFT on noisy additions, then GRPO with
# accuracy_reward; the held-out accuracy after GRPO must be clearly above the SFT policy's (+4 of 20 at least).
set -u
RLHF=${1:?usage: demo_grpo_slow.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-demo-grpo.XXXXXX)
trap 'rm -rf "$W"' EXIT
RLHF=$RLHF DEMO_DIR="$W/out" scripts/demo_grpo.sh >"$W/log" 2>&1 || { echo "FAIL: demo_grpo.sh: $(tail -n 5 "$W/log")"; exit 1; }
line=$(grep "held-out accuracy (greedy" "$W/log")
echo "$line"
before=$(echo "$line" | sed -E 's/.*before GRPO ([0-9]+)\/.*/\1/')
after=$(echo "$line" | sed -E 's/.*after GRPO ([0-9]+)\/.*/\1/')
[ -n "$before" ] && [ -n "$after" ] && [ "$after" -ge $((before + 4)) ] || { echo "FAIL: held-out accuracy did not rise clearly ($line)"; exit 1; }
echo "demo_grpo: passed"
