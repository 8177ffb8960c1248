#!/bin/bash
# Output directories complete (issue 14): every tokenizer file of the source model (tokenizer.json,
# vocab.json + merges.txt, tokenizer_config.json, special_tokens_map.json, added_tokens.json,
# chat_template.jinja, additional_chat_templates/) reaches the output and the checkpoints, as save_pretrained
# writes them; weights are saved in the dtype the model came in (config.json torch_dtype bfloat16 -> BF16,
# rounded to nearest even from the fp32 weights) or in --torch_dtype's, while checkpoints keep fp32 weights
# so that resume stays byte-identical.
set -u
RLHF=${1:?usage: output_dirs.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-outdirs.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat >"$W/cfg.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256, "torch_dtype": "bfloat16"}
JSON
"$RLHF" init --config "$W/cfg.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/base" --seed 3 \
  >/dev/null 2>"$W/init.err" || { cat "$W/init.err"; echo "FAIL: init"; exit 1; }
echo '{"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}' >"$W/base/special_tokens_map.json"
echo '{}' >"$W/base/added_tokens.json"
printf '{%% for m in messages %%}{{ m.content }}{%% endfor %%}' >"$W/base/chat_template.jinja"
mkdir "$W/base/additional_chat_templates" && printf 'tool {{ messages }}' >"$W/base/additional_chat_templates/tool_use.jinja"
for i in $(seq 0 11); do echo "{\"prompt\": \"Q: $i plus $i?\", \"completion\": \" A: $((2 * i))\"}"; done >"$W/data.jsonl"
sft=(sft --model_name_or_path "$W/base" --dataset_name "$W/data.jsonl" --num_train_epochs 2 --learning_rate 1e-2
  --per_device_train_batch_size 4 --threads 1 --quiet)
"$RLHF" "${sft[@]}" --output_dir "$W/out" >/dev/null 2>"$W/out.err" || fail "sft: $(tail -n 2 "$W/out.err")"
for d in out out/checkpoint-3; do
  for f in tokenizer.json vocab.json merges.txt tokenizer_config.json special_tokens_map.json added_tokens.json \
    chat_template.jinja additional_chat_templates/tool_use.jinja; do
    cmp -s "$W/base/$f" "$W/$d/$f" || fail "$d lacks the source's $f"
  done
done

# dtypes: the source BF16 (init honours torch_dtype), the output BF16, the checkpoint F32; --torch_dtype wins
"$RLHF" "${sft[@]}" --output_dir "$W/f32" --torch_dtype float32 >/dev/null 2>&1 || fail "sft --torch_dtype float32"
"$RLHF" "${sft[@]}" --output_dir "$W/f16" --torch_dtype float16 >/dev/null 2>&1 || fail "sft --torch_dtype float16"
python3 - "$W" <<'PY' || fail "saved dtypes"
import json, struct, sys
W = sys.argv[1]
def load(d):
    raw = open("%s/%s/model.safetensors" % (W, d), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v["dtype"], raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}
def cfg(d):
    return json.load(open("%s/%s/config.json" % (W, d)))["torch_dtype"]
def dtypes(t):
    return {v[0] for v in t.values()}
base, out, ck, f32, f16 = load("base"), load("out"), load("out/checkpoint-3"), load("f32"), load("f16")
assert dtypes(base) == {"BF16"} and cfg("base") == "bfloat16", (dtypes(base), cfg("base"))
assert dtypes(out) == {"BF16"} and cfg("out") == "bfloat16", (dtypes(out), cfg("out"))
assert dtypes(ck) == {"F32"} and cfg("out/checkpoint-3") == "bfloat16", dtypes(ck)
assert dtypes(f32) == {"F32"} and cfg("f32") == "float32", dtypes(f32)
assert dtypes(f16) == {"F16"} and cfg("f16") == "float16", dtypes(f16)
def rne_bf16(u):
    return ((u + 0x7fff + ((u >> 16) & 1)) >> 16) & 0xffff
n = 0
for k, (_, b) in f32.items():
    words = struct.unpack("<%dI" % (len(b) // 4), b)
    bf = struct.unpack("<%dH" % (len(words)), out[k][1])
    hf = f16[k][1]
    for i, u in enumerate(words):
        assert bf[i] == rne_bf16(u), (k, i, hex(u), hex(bf[i]))
        x = struct.unpack("<f", struct.pack("<I", u))[0]
        assert hf[2 * i:2 * i + 2] == struct.pack("<e", x), (k, i, x)
        n += 1
print("output_dirs: %d weights: BF16 and F16 files are the fp32 weights rounded to nearest even" % n)
PY
# resume from the fp32 checkpoint: the BF16 output is byte-identical
mkdir "$W/res" && cp -r "$W/out/checkpoint-3" "$W/res/"
"$RLHF" "${sft[@]}" --output_dir "$W/res" --resume_from_checkpoint >/dev/null 2>"$W/res.err" ||
  fail "resume: $(tail -n 2 "$W/res.err")"
cmp -s "$W/out/model.safetensors" "$W/res/model.safetensors" || fail "resumed BF16 model differs"
c=0
"$RLHF" "${sft[@]}" --output_dir "$W/bad" --torch_dtype float8 >/dev/null 2>"$W/bad.err" || c=$?
[ "$c" = 2 ] && grep -q -- "--torch_dtype: expected auto, float32, bfloat16 or float16, got 'float8'" "$W/bad.err" &&
  [ ! -e "$W/bad" ] || fail "--torch_dtype float8: exit $c: $(cat "$W/bad.err")"

[ "$fails" = 0 ] && echo "output_dirs: all ok"
exit "$fails"
