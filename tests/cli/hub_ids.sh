#!/bin/bash
# Hub ids offline: a model or tokenizer flag given ORG/NAME that is not a local path resolves to its snapshot
# in the local Hugging Face cache (HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else
# ~/.cache/huggingface/hub; refs/main names the commit, a lone snapshot serves without refs, --model_revision
# picks another ref), as transformers does offline, for --model_name_or_path, --reward_model_path,
# --tokenizer, --config files and a peft adapter's base_model_name_or_path. A hub id that is not there exits 2
# saying rlhf never downloads and how to get it. The cache is a fake one built here.
set -u
RLHF=${1:?usage: hub_ids.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-hub-ids.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
unset HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_HOME XDG_CACHE_HOME

echo '{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_positions": 64,
 "n_embd": 16, "n_layer": 1, "n_head": 2, "bos_token_id": 50256, "eos_token_id": 50256}' >"$W/lm.json"
c1=0123456789abcdef0123456789abcdef01234567 c2=89abcdef0123456789abcdef0123456789abcdef
repo="$W/hub/models--org--tiny"
mkdir -p "$repo/refs"
for s in 1 2; do
  c=$([ $s = 1 ] && echo $c1 || echo $c2)
  "$RLHF" init --config "$W/lm.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$repo/snapshots/$c" \
    --seed $s >/dev/null 2>&1 || fail "init $s"
done
echo -n $c1 >"$repo/refs/main"
echo -n $c2 >"$repo/refs/v2"

gen() { "$RLHF" generate --prompt "Hello there" --max_new_tokens 4 --stop_token none --threads 1 "$@" 2>"$W/gen.err"; }
want1=$(gen --model_name_or_path "$repo/snapshots/$c1") want2=$(gen --model_name_or_path "$repo/snapshots/$c2")
[ -n "$want1" ] && [ "$want1" != "$want2" ] || fail "the two snapshots generate alike: '$want1'"
got=$(HF_HUB_CACHE="$W/hub" gen --model_name_or_path org/tiny) && [ "$got" = "$want1" ] ||
  fail "HF_HUB_CACHE: '$got' ($(cat "$W/gen.err"))"
got=$(HF_HUB_CACHE="$W/hub" gen --model_name_or_path org/tiny --model_revision v2) && [ "$got" = "$want2" ] ||
  fail "--model_revision v2: '$got' ($(cat "$W/gen.err"))"
got=$(HF_HUB_CACHE="$W/hub" gen --model_name_or_path=org/tiny --revision $c2) && [ "$got" = "$want2" ] ||
  fail "--revision COMMIT: '$got' ($(cat "$W/gen.err"))"
mkdir -p "$W/home" && ln -s "$W/hub" "$W/home/hub"
got=$(HF_HOME="$W/home" gen --model_name_or_path org/tiny) && [ "$got" = "$want1" ] || fail "HF_HOME: '$got'"
mkdir -p "$W/user/.cache/huggingface" && ln -s "$W/hub" "$W/user/.cache/huggingface/hub"
got=$(HOME="$W/user" gen --model_name_or_path org/tiny) && [ "$got" = "$want1" ] || fail "~/.cache: '$got'"
printf 'model_name_or_path: org/tiny\nprompt: Hello there\n' >"$W/c.yaml"
got=$(HF_HUB_CACHE="$W/hub" "$RLHF" generate --config "$W/c.yaml" --max_new_tokens 4 --stop_token none --threads 1 \
  2>"$W/gen.err") && [ "$got" = "$want1" ] || fail "--config with a hub id: '$got' ($(cat "$W/gen.err"))"
[ "$(HF_HUB_CACHE="$W/hub" "$RLHF" tokenize --tokenizer org/tiny --text hi 2>&1)" = \
  "$("$RLHF" tokenize --tokenizer tests/fixtures/tokenizers/gpt2 --text hi)" ] || fail "--tokenizer with a hub id"
# no refs/main, one snapshot: that one; two: an error
mkdir -p "$W/hub2/models--org--one/snapshots" && cp -r "$repo/snapshots/$c2" "$W/hub2/models--org--one/snapshots/"
got=$(HF_HUB_CACHE="$W/hub2" gen --model_name_or_path org/one) && [ "$got" = "$want2" ] || fail "lone snapshot: '$got'"
rm "$repo/refs/main"
c=0; HF_HUB_CACHE="$W/hub" gen --model_name_or_path org/tiny >/dev/null || c=$?
[ $c = 2 ] && grep -q "in the local Hugging Face cache but without this revision" "$W/gen.err" ||
  fail "two snapshots, no refs/main: exit $c ($(cat "$W/gen.err"))"
echo -n $c1 >"$repo/refs/main"

# not in the cache: exit 2, how to get it, nothing written
expect2() { # name, stderr regex, args...
  local name=$1 pat=$2 c=0; shift 2
  HF_HUB_CACHE="$W/hub" "$RLHF" "$@" >/dev/null 2>"$W/$name.err" || c=$?
  if [ "$c" != 2 ]; then fail "$name: exit $c, expected 2 ($(tail -n 1 "$W/$name.err"))"
  elif ! grep -qE -- "$pat" "$W/$name.err"; then fail "$name: stderr does not match /$pat/: $(cat "$W/$name.err")"
  elif [ -e "$W/out" ]; then fail "$name: wrote --output_dir"; fi
}
expect2 absent "--model_name_or_path Qwen/Qwen2.5-0.5B: not a local directory, and not in the local Hugging Face cache \($W/hub/models--Qwen--Qwen2.5-0.5B, revision main\); rlhf never downloads: get it with .huggingface-cli download Qwen/Qwen2.5-0.5B. .*git clone https://huggingface.co/Qwen/Qwen2.5-0.5B" \
  sft --model_name_or_path Qwen/Qwen2.5-0.5B --dataset_name "$W/none.jsonl" --output_dir "$W/out"
expect2 absent_rm "--reward_model_path org/rm: not a local directory, and not in the local Hugging Face cache" \
  ppo --model_name_or_path org/tiny --sft_model_path org/tiny --reward_model_path org/rm --dataset_name "$W/p.jsonl" \
  --output_dir "$W/out"
expect2 absent_rev "--model_name_or_path org/tiny: .*without this revision .*revision v9.*download org/tiny --revision v9" \
  generate --model_name_or_path org/tiny --model_revision v9 --prompt hi

# a peft adapter whose base_model_name_or_path is a hub id
for i in 1 2 3 4; do echo "{\"prompt\": \"Q$i\", \"completion\": \" A$i\"}"; done >"$W/sft.jsonl"
HF_HUB_CACHE="$W/hub" "$RLHF" sft --model_name_or_path org/tiny --dataset_name "$W/sft.jsonl" --output_dir "$W/lora" \
  --use_peft --lora_r 2 --max_steps 1 --save_strategy no --threads 1 --quiet >/dev/null 2>"$W/sft.err" ||
  fail "sft from a hub id: $(tail -n 2 "$W/sft.err")"
if [ -s "$W/lora/adapter_config.json" ]; then
  sed -i "s#\"base_model_name_or_path\": *\"[^\"]*\"#\"base_model_name_or_path\": \"org/tiny\"#" "$W/lora/adapter_config.json"
  grep -q '"base_model_name_or_path": "org/tiny"' "$W/lora/adapter_config.json" || fail "could not edit adapter_config.json"
  HF_HUB_CACHE="$W/hub" gen --model_name_or_path "$W/lora" >/dev/null || fail "adapter on a hub-id base: $(cat "$W/gen.err")"
  c=0; HF_HUB_CACHE="$W/hub2" gen --model_name_or_path "$W/lora" >/dev/null || c=$?
  [ $c = 2 ] && grep -q "adapter_config.json: base_model_name_or_path org/tiny: not a local directory" "$W/gen.err" ||
    fail "adapter whose hub-id base is not cached: exit $c ($(cat "$W/gen.err"))"
fi

[ $fails = 0 ] && echo "hub_ids: all passed"
exit $((fails > 0))
