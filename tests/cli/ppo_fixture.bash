# Sourced by tests/cli/ppo_*.sh (not a test itself): builds, in $W, a task small enough for PPO to learn
# in seconds: a 16-token vocabulary (0 pad, 1 EOS, 7 the "good" token), prompts.jsonl ({"prompt_ids"}),
# a tiny GPT-2 policy ($W/policy, `rlhf init`) and a tiny GPT-2 reward model ($W/rm, `rlhf init` +
# `rlhf reward` on pairs whose chosen responses are rich in token 7), both without tokenizer files so
# the reward model reads the policy's ids. Needs RLHF, W and fail().
cat >"$W/gen.awk" <<'EOF'
function rtok() { t = 2 + int(rand() * 14); if (t == 7) t = 8; return t }
function prompt(   s, i) { s = rtok(); for (i = 1; i < 4; i++) s = s "," rtok(); return s }
BEGIN {
  srand(seed)
  for (r = 0; r < n; r++) {
    p = prompt()
    if (what == "prompts") { printf "{\"prompt_ids\": [%s]}\n", p; continue }
    c = ""; j = ""
    for (i = 0; i < 6; i++) { c = c "," (rand() < 0.5 ? 7 : rtok()); j = j "," rtok() }
    printf "{\"chosen_ids\": [%s%s,1], \"rejected_ids\": [%s%s,1]}\n", p, c, p, j
  }
}
EOF
awk -v seed=1 -v n=256 -v what=pairs -f "$W/gen.awk" >"$W/pairs.jsonl"
awk -v seed=2 -v n=64 -v what=prompts -f "$W/gen.awk" >"$W/prompts.jsonl"
cfg='"model_type": "gpt2", "vocab_size": 16, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 2,
 "activation_function": "gelu_new", "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
 "layer_norm_epsilon": 1e-05, "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 1'
echo "{\"architectures\": [\"GPT2LMHeadModel\"], $cfg}" >"$W/policy.json"
echo "{\"architectures\": [\"GPT2ForSequenceClassification\"], $cfg, \"num_labels\": 1, \"pad_token_id\": 0}" >"$W/rm.json"
T=tests/fixtures/tokenizers/gpt2
"$RLHF" init --config "$W/policy.json" --tokenizer $T --output_dir "$W/policy" --seed 1 >/dev/null 2>&1 || fail "init policy"
"$RLHF" init --config "$W/rm.json" --tokenizer $T --output_dir "$W/rm-init" --seed 2 >/dev/null 2>&1 || fail "init rm"
for d in policy rm-init; do
  rm -f "$W/$d"/{tokenizer.json,vocab.json,merges.txt,tokenizer_config.json,special_tokens_map.json}
done
"$RLHF" reward --model_name_or_path "$W/rm-init" --dataset_name "$W/pairs.jsonl" --output_dir "$W/rm" \
  --num_train_epochs 2 --learning_rate 3e-3 --per_device_train_batch_size 16 --save_strategy no --threads 2 --quiet \
  >/dev/null 2>"$W/reward.err" || { fail "rlhf reward: $(tail -n 3 "$W/reward.err")"; echo "$fails failed"; exit 1; }

