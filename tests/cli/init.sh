#!/bin/bash
# rlhf init: writes a Hugging Face model directory (config.json with the config's fields and labels,
# model.safetensors in transformers' layout, the tokenizer files), refuses a non-empty --output_dir
# unless --overwrite_output_dir, and rejects unknown model types / head classes with exit 2.
set -u
RLHF=${1:?usage: init.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-init.XXXXXX)
trap 'rm -rf "$W"' EXIT
TOK=tests/fixtures/tokenizers/bert-base-uncased
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cat >"$W/tiny.json" <<'JSON'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 48,
 "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02, "pad_token_id": 0,
 "num_labels": 1, "my_custom_field": "kept"}
JSON
"$RLHF" init --config "$W/tiny.json" --tokenizer "$TOK" --output_dir "$W/out" --seed 3 2>"$W/err" ||
  fail "init exit $? ($(tail -n1 "$W/err"))"
for f in config.json model.safetensors tokenizer.json vocab.txt tokenizer_config.json special_tokens_map.json; do
  [ -s "$W/out/$f" ] || fail "output lacks $f"
done
cmp -s "$TOK/vocab.txt" "$W/out/vocab.txt" || fail "vocab.txt not copied verbatim"
grep -q '"BertForSequenceClassification"' "$W/out/config.json" || fail "config.json architectures"
grep -q '"my_custom_field": "kept"' "$W/out/config.json" || fail "config.json lost a field"
grep -q '"LABEL_0"' "$W/out/config.json" || fail "config.json id2label"
# safetensors header: 8-byte length then JSON naming HF's tensors with their shapes.
n=$(head -c 8 "$W/out/model.safetensors" | od -An -tu8 | tr -d " ")
head -c $((8 + n)) "$W/out/model.safetensors" | tail -c "$n" >"$W/header"
for t in '"bert.embeddings.word_embeddings.weight":{"dtype":"F32","shape":\[30522,32\]' \
         '"bert.encoder.layer.1.intermediate.dense.weight":{"dtype":"F32","shape":\[48,32\]' \
         '"bert.pooler.dense.bias":{"dtype":"F32","shape":\[32\]' '"classifier.weight":{"dtype":"F32","shape":\[1,32\]' \
         '"__metadata__":{"format":"pt"}'; do
  grep -q "$t" "$W/header" || fail "model.safetensors header lacks $t"
done

# The same seed gives the same weights; a non-empty output_dir is refused, then overwritten on request.
"$RLHF" init --config "$W/tiny.json" --tokenizer "$TOK" --output_dir "$W/out2" --seed 3 2>/dev/null
cmp -s "$W/out/model.safetensors" "$W/out2/model.safetensors" || fail "same seed, different weights"
"$RLHF" init --config "$W/tiny.json" --tokenizer "$TOK" --output_dir "$W/out" --seed 4 2>"$W/err"
c=$?; [ $c = 2 ] && grep -q "overwrite_output_dir" "$W/err" || fail "non-empty output_dir: exit $c ($(cat "$W/err"))"
cmp -s "$W/out/model.safetensors" "$W/out2/model.safetensors" || fail "refused run still wrote"
"$RLHF" init --config "$W/tiny.json" --tokenizer "$TOK" --output_dir "$W/out" --seed 4 --overwrite_output_dir 2>/dev/null ||
  fail "--overwrite_output_dir exit $?"
cmp -s "$W/out/model.safetensors" "$W/out2/model.safetensors" && fail "seed 4 gave seed 3's weights"

# Bad inputs: exit 2 naming the problem, nothing written.
sed 's/"model_type": "bert"/"model_type": "quuxformer"/' "$W/tiny.json" >"$W/quux.json"
"$RLHF" init --config "$W/quux.json" --tokenizer "$TOK" --output_dir "$W/q" 2>"$W/err"
c=$?; [ $c = 2 ] && grep -q "quuxformer" "$W/err" && [ ! -e "$W/q" ] || fail "unknown model_type: exit $c ($(cat "$W/err"))"
sed 's/BertForSequenceClassification/BertForQuestionAnswering/' "$W/tiny.json" >"$W/qa.json"
"$RLHF" init --config "$W/qa.json" --tokenizer "$TOK" --output_dir "$W/q" 2>"$W/err"
c=$?; [ $c = 2 ] && grep -q "BertForQuestionAnswering" "$W/err" || fail "unknown class: exit $c ($(cat "$W/err"))"
"$RLHF" init --config "$W/tiny.json" --tokenizer "$W" --output_dir "$W/q" 2>"$W/err"
c=$?; [ $c = 2 ] && grep -q "tokenizer" "$W/err" || fail "no tokenizer files: exit $c ($(cat "$W/err"))"
"$RLHF" init --tokenizer "$TOK" --output_dir "$W/q" 2>"$W/err"
c=$?; [ $c = 2 ] && grep -q -- "--config" "$W/err" || fail "missing --config: exit $c"

# DistilBERT and RoBERTa configs work too.
printf '{"architectures": ["DistilBertForSequenceClassification"], "model_type": "distilbert", "vocab_size": 100, "dim": 16, "n_layers": 1, "n_heads": 2, "hidden_dim": 24, "max_position_embeddings": 32}' >"$W/d.json"
"$RLHF" init --config "$W/d.json" --tokenizer "$TOK" --output_dir "$W/d" 2>"$W/err" || fail "distilbert init ($(cat "$W/err"))"
grep -q '"LABEL_1"' "$W/d/config.json" || fail "distilbert default of 2 labels"
printf '{"architectures": ["RobertaForSequenceClassification"], "model_type": "roberta", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 34, "pad_token_id": 1, "num_labels": 1}' >"$W/r.json"
"$RLHF" init --config "$W/r.json" --tokenizer tests/fixtures/tokenizers/roberta-base --output_dir "$W/r" 2>"$W/err" || fail "roberta init ($(cat "$W/err"))"

# A SentencePiece tokenizer.model (no tokenizer.json) is copied, and generate reads it back.
SPM=tests/fixtures/tokenizers/spm/llama-bpe
printf '{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 800, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 24, "max_position_embeddings": 64, "bos_token_id": 1, "eos_token_id": 2}' >"$W/l.json"
"$RLHF" init --config "$W/l.json" --tokenizer "$SPM" --output_dir "$W/l" 2>"$W/err" || fail "llama init with tokenizer.model ($(cat "$W/err"))"
cmp -s "$SPM/tokenizer.model" "$W/l/tokenizer.model" || fail "tokenizer.model not copied verbatim"
"$RLHF" generate --model_name_or_path "$W/l" --prompt "Natalia sold" --max_new_tokens 3 >"$W/gen" 2>"$W/err" ||
  fail "generate with tokenizer.model ($(cat "$W/err"))"

[ $fails = 0 ] && echo "cli init: all checks passed"
exit $((fails > 0))
