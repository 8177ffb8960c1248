#!/bin/bash
# Remote rewards: `rlhf ppo --reward_model_path http://127.0.0.1:PORT/get_reward` against `rlhf serve` of a BERT
# reward model gives the same run (training_log.csv, samples.jsonl) as the same model loaded locally, with the
# API key taken from $RLHF_API_KEY. A server that stops answering (a stub that answers 1 request, then 503)
# is retried with backoff, then the run stops with exit 1 naming the server, with the state after the last
# finished update saved; resuming from it against a healthy server gives the uninterrupted run. Nothing
# listening: exit 1 after the retries. --normalize_reward with a URL: exit 2 (the server normalises).
set -u
RLHF=${1:?usage: serve_ppo.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-serve-ppo.XXXXXX)
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. tests/cli/serve_common.bash

cat >"$W/bert.json" <<'EOF'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 32,
 "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
 "type_vocab_size": 2, "pad_token_id": 0, "num_labels": 1}
EOF
cat >"$W/policy.json" <<'EOF'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_positions": 128, "n_embd": 32,
 "n_layer": 2, "n_head": 2, "activation_function": "gelu_new", "resid_pdrop": 0.0, "embd_pdrop": 0.0,
 "attn_pdrop": 0.0, "layer_norm_epsilon": 1e-05, "initializer_range": 0.02, "bos_token_id": 50256,
 "eos_token_id": 50256}
EOF
"$RLHF" init --config "$W/bert.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$W/rm" \
  --seed 1 >/dev/null 2>&1 || fail "init bert"
"$RLHF" init --config "$W/policy.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/policy" --seed 1 \
  >/dev/null 2>&1 || fail "init policy"

ppo() {  # OUT REWARD [flags...]
  local out=$1 rm=$2
  shift 2
  "$RLHF" ppo --model_name_or_path "$W/policy" --sft_model_path "$W/policy" --reward_model_path "$rm" \
    --dataset_name data/demo/prompts.jsonl --output_dir "$W/$out" --learning_rate 1e-3 --per_device_train_batch_size 8 \
    --response_length 8 --temperature 1.0 --num_ppo_epochs 1 --num_sample_generations 3 --value_model head \
    --threads 2 --quiet "$@" 2>"$W/$out.err"
}
same_log() {  # A B: training_log.csv equal but for the eps column (a speed)
  python3 - "$W/$1/training_log.csv" "$W/$2/training_log.csv" <<'EOF'
import csv, sys
a, b = (list(csv.DictReader(open(p))) for p in sys.argv[1:3])
for r in a + b: r.pop("eps", None)
sys.exit(0 if a == b and len(a) > 0 else 1)
EOF
}

# ---- the same run, local and remote ----
ppo local "$W/rm" --total_episodes 24 || fail "local ppo: $(tail -n 3 "$W/local.err")"
serve_start RM --model_name_or_path "$W/rm" --threads 2 --batch_size 64 --api_key k3y || exit 1
RLHF_API_KEY=k3y ppo remote "http://127.0.0.1:$RM_PORT/get_reward" --total_episodes 24 ||
  fail "remote ppo: $(tail -n 3 "$W/remote.err")"
same_log local remote || fail "remote rewards differ from local ones: $(diff "$W/local/training_log.csv" "$W/remote/training_log.csv" | head -n 6)"
cmp -s "$W/local/samples.jsonl" "$W/remote/samples.jsonl" || fail "samples.jsonl differ"
grep -q "notice: --value_model" "$W/remote.err" && fail "a notice about the value model with --value_model head"
ppo nokey "http://127.0.0.1:$RM_PORT/get_reward" --total_episodes 8
rc=$?
[ "$rc" = 1 ] && grep -q "HTTP 401" "$W/nokey.err" || fail "no API key: exit $rc, $(tail -n 2 "$W/nokey.err")"
serve_stop RM
[ "$RM_RC" = 0 ] || fail "serve exit $RM_RC"

# ---- a server that stops answering ----
cat >"$W/stub.py" <<'EOF'
# A reward server stub: rewards from the response text; answers `ok` requests, then 503 forever (-1: always ok).
import http.server, json, sys
ok, portfile = int(sys.argv[1]), sys.argv[2]
seen = [0]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        seen[0] += 1
        if ok >= 0 and seen[0] > ok:
            out, code = {"error": "stub: gone"}, 503
        else:
            out, code = {"rewards": [len(r) % 7 / 7.0 for r in body["response"]]}, 200
        data = json.dumps(out).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(portfile + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(portfile + ".tmp", portfile)
s.serve_forever()
EOF
stub() {  # NAME OK: starts the stub, sets NAME_PORT
  python3 "$W/stub.py" "$2" "$W/$1.port" &
  SERVE_PIDS+=("$!")
  local i
  for ((i = 0; i < 300; i++)); do [ -s "$W/$1.port" ] && break; sleep 0.1; done
  printf -v "$1_PORT" '%s' "$(cat "$W/$1.port")"
}
stub GOOD -1
stub FLAKY 1
ppo full "http://127.0.0.1:$GOOD_PORT/get_reward" --total_episodes 24 || fail "stub ppo: $(tail -n 3 "$W/full.err")"
ppo cut "http://127.0.0.1:$FLAKY_PORT/get_reward" --total_episodes 24 --reward_retries 2
rc=$?
[ "$rc" = 1 ] || fail "server gone: exit $rc (want 1)"
grep -q "retrying in 1 s (1 of 2)" "$W/cut.err" && grep -q "retrying in 2 s (2 of 2)" "$W/cut.err" ||
  fail "no retry with backoff: $(cat "$W/cut.err")"
grep -q "update 2: reward server http://127.0.0.1:$FLAKY_PORT/get_reward: no answer after 3 tries (last: HTTP 503 stub: gone).*checkpoint-1" "$W/cut.err" ||
  fail "message: $(tail -n 1 "$W/cut.err")"
[ -d "$W/cut/checkpoint-1" ] || fail "no checkpoint-1 after the server went away"
ppo cut "http://127.0.0.1:$GOOD_PORT/get_reward" --total_episodes 24 --resume_from_checkpoint "$W/cut/checkpoint-1" ||
  fail "resume: $(tail -n 3 "$W/cut.err")"
same_log full cut || fail "resumed run differs from the uninterrupted one"

# ---- nothing listening; normalisation belongs to the server ----
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ppo down "http://127.0.0.1:$port/get_reward" --total_episodes 8 --reward_retries 1 --reward_timeout 5
rc=$?
[ "$rc" = 1 ] && grep -q "no answer after 2 tries" "$W/down.err" || fail "nothing listening: exit $rc, $(tail -n 1 "$W/down.err")"
ppo norm "http://127.0.0.1:$port/get_reward" --total_episodes 8 --normalize_reward
rc=$?
[ "$rc" = 2 ] && grep -q "rlhf serve --normalize_reward" "$W/norm.err" || fail "--normalize_reward with a URL: exit $rc"

[ "$fails" = 0 ] && echo "serve_ppo: all checks passed" || echo "serve_ppo: $fails failed"
[ "$fails" = 0 ]
