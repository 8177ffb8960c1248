#!/bin/bash
# `rlhf serve` (OpenRLHF's serve_rm) on loopback, for an encoder (tiny BERT, WordPiece) and a decoder (tiny
# GPT-2, byte-level BPE) reward model: {"prompt", "response"} rewards equal `rlhf score` on the same rows;
# the query form equals `score` reading the whole text (pad / EOS texts at the ends stripped, as serve_rm);
# every bad request gets its status and a JSON error naming the field (400 malformed JSON, wrong types,
# different lengths, invalid UTF-8, empty arrays; 413; 404; 405; 401 with --api_key) while other clients keep
# getting right answers; 16 clients x 50 requests see no error; SIGTERM with requests in flight answers them
# and exits 0; bad flags exit 2.
set -u
RLHF=${1:?usage: serve.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-serve.XXXXXX)
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
. tests/cli/serve_common.bash

cat >"$W/bert.json" <<'EOF'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 32,
 "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 128,
 "type_vocab_size": 2, "pad_token_id": 0, "num_labels": 1}
EOF
echo '{"architectures": ["GPT2ForSequenceClassification"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 32,
 "n_layer": 2, "n_head": 2, "n_positions": 128, "bos_token_id": 50256, "eos_token_id": 50256, "num_labels": 2,
 "pad_token_id": 50256}' >"$W/gpt2.json"
"$RLHF" init --config "$W/bert.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$W/bert" \
  --seed 3 >/dev/null 2>&1 || fail "init bert"
"$RLHF" init --config "$W/gpt2.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/gpt2" --seed 4 \
  >/dev/null 2>&1 || fail "init gpt2"

# rows: (prompt, response), with non-ASCII text, an empty response and different lengths
python3 - "$W" <<'EOF'
import json, sys
W = sys.argv[1]
rows = [("How do I fix my bike?", " Happy to help: first check the chain."), ("hi", " go away"),
        ("Qu'est-ce que c'est ?", " Un vélo, très rapide — 速い."), ("Tell me a joke.", ""),
        ("A longer prompt " * 5, " and a response that goes on " * 3), ("x", " y")]
with open(W + "/rows.jsonl", "w") as f:
    for p, r in rows: f.write(json.dumps({"prompt": p, "response": r}) + "\n")
with open(W + "/whole.jsonl", "w") as f:  # the query form's reference: the whole text as one response
    for p, r in rows: f.write(json.dumps({"response": p + r}) + "\n")
EOF
# `score` refuses an empty response in a dataset row but scores one given as --response "" (a policy's empty
# completion still gets a reward), as the server does; the references come from --prompt/--response.
ref_scores() {  # MODEL ENCODING FILE -> one score per line (empty responses scored one by one)
  python3 - "$RLHF" "$@" <<'EOF'
import json, subprocess, sys
rlhf, model, enc, path = sys.argv[1:5]
for line in open(path):
    r = json.loads(line)
    args = [rlhf, "score", "--model_name_or_path", model, "--threads", "1", "--encoding", enc]
    if "prompt" in r: args += ["--prompt", r["prompt"]]
    out = subprocess.run(args + ["--response", r["response"]], capture_output=True, text=True)
    print(out.stdout.strip() if out.returncode == 0 else "ERR " + out.stderr.strip())
EOF
}
for m in bert gpt2; do
  "$RLHF" score --model_name_or_path "$W/$m" --dataset_name "$W/rows.jsonl" --threads 1 >/dev/null 2>"$W/$m.score.err"
  grep -q "field 'response' is an empty response" "$W/$m.score.err" || fail "$m: score should refuse the empty response"
  ref_scores "$W/$m" pair "$W/rows.jsonl" >"$W/$m.ref"
  ref_scores "$W/$m" concat "$W/whole.jsonl" >"$W/$m.qref"
  grep -q ERR "$W/$m.ref" "$W/$m.qref" && fail "$m: reference scores: $(grep -h ERR "$W/$m.ref" "$W/$m.qref" | head -n 2)"
done

serve_start BERT --model_name_or_path "$W/bert" --threads 2 --batch_size 8 --max_request_bytes 4096 || exit 1
serve_start GPT --model_name_or_path "$W/gpt2" --threads 2 --api_key s3cret || exit 1

python3 - "$W" "$BERT_PORT" "$GPT_PORT" <<'EOF' || fail "client checks (above)"
import http.client, json, sys, threading
W, bport, gport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
bad = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok: bad.append(what)

def req(port, method, path, body=None, headers=None, raw=None, chunked=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if chunked:
        c.putrequest(method, path)
        for k, v in h.items(): c.putheader(k, v)
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        for i in range(0, len(data), 1000):
            part = data[i:i + 1000]
            c.send(b"%x\r\n%s\r\n" % (len(part), part))
        c.send(b"0\r\n\r\n")
    else:
        c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read()
    c.close()
    try: j = json.loads(text)
    except Exception: j = None
    return r.status, j

rows = [json.loads(l) for l in open(W + "/rows.jsonl")]
P = [r["prompt"] for r in rows]; R = [r["response"] for r in rows]
KEY = {"Authorization": "Bearer s3cret"}
def close(a, b, tol=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b))

ref = {}
for name, port, hdr in (("bert", bport, {}), ("gpt2", gport, KEY)):
    exp = [float(x) for x in open(W + "/%s.ref" % name)]
    qexp = [float(x) for x in open(W + "/%s.qref" % name)]
    s, j = req(port, "GET", "/health")
    check(s == 200 and j == {"status": "ok"}, "%s: GET /health -> 200" % name)
    s, j = req(port, "POST", "/get_reward", {"prompt": P, "response": R}, hdr)
    check(s == 200 and close(j["rewards"], exp) and j["scores"] == j["rewards"],
          "%s: prompt/response rewards == rlhf score (%s vs %s)" % (name, j and j.get("rewards"), exp))
    one = [req(port, "POST", "/get_reward", {"prompt": [p], "response": [r]}, hdr)[1]["rewards"][0] for p, r in zip(P, R)]
    check(close(one, exp), "%s: one row per request == rlhf score" % name)
    s, j = req(port, "POST", "/get_reward", {"query": [p + r for p, r in zip(P, R)], "prompts": P}, hdr)
    check(s == 200 and close(j["rewards"], qexp), "%s: query form == score of the whole text" % name)
    ref[name] = (exp, qexp)

# serve_rm strips pad / EOS texts from a query's ends before scoring (its client decodes special tokens)
q = P[0] + R[0]
s, j = req(gport, "POST", "/get_reward", {"query": ["<|endoftext|>" + q + "<|endoftext|><|endoftext|>"]}, KEY)
check(s == 200 and close(j["rewards"], ref["gpt2"][1][:1]), "gpt2: query with EOS texts at the ends == without")
s, j = req(bport, "POST", "/get_reward", {"query": ["[PAD][PAD]" + q]})
check(s == 200 and close(j["rewards"], ref["bert"][1][:1]), "bert: query with [PAD] texts at the start == without")

# bad requests, while 4 background clients keep asking and checking their answers
stop = threading.Event(); bg_err = []; bg_n = [0]
def background(i):
    k = i % len(P)
    while not stop.is_set():
        try:
            s, j = req(bport, "POST", "/get_reward", {"prompt": [P[k]], "response": [R[k]]})
            if s != 200 or not close(j["rewards"], ref["bert"][0][k:k + 1]): bg_err.append((s, j))
            bg_n[0] += 1
        except Exception as e: bg_err.append(repr(e))
ths = [threading.Thread(target=background, args=(i,)) for i in range(4)]
for t in ths: t.start()
cases = [
    ("malformed JSON", "POST", "/get_reward", None, b'{"query": ["a", }', {}, 400, "malformed JSON"),
    ("not an object", "POST", "/get_reward", [1, 2], None, {}, 400, "expected a JSON object"),
    ("no field", "POST", "/get_reward", {"text": ["a"]}, None, {}, 400, "'query'"),
    ("query not an array", "POST", "/get_reward", {"query": "a"}, None, {}, 400, "field 'query'"),
    ("query item a number", "POST", "/get_reward", {"query": ["a", 3]}, None, {}, 400, "field 'query'[1]"),
    ("prompt without response", "POST", "/get_reward", {"prompt": ["a"]}, None, {}, 400, "field 'response'"),
    ("response item null", "POST", "/get_reward", {"prompt": ["a"], "response": [None]}, None, {}, 400, "field 'response'[0]"),
    ("lengths differ", "POST", "/get_reward", {"prompt": ["a", "b"], "response": ["c"]}, None, {}, 400, "differ in length"),
    ("empty query", "POST", "/get_reward", {"query": []}, None, {}, 400, "field 'query': empty"),
    ("empty prompt array", "POST", "/get_reward", {"prompt": [], "response": []}, None, {}, 400, "field 'prompt': empty"),
    ("invalid UTF-8", "POST", "/get_reward", None, b'{"query": ["ok", "\xc3\x28"]}', {}, 400, "field 'query'[1]: invalid UTF-8"),
    ("escaped NUL", "POST", "/get_reward", None, b'{"query": ["a\\u0000b"]}', {}, 400, "\\u0000"),
    ("empty body", "POST", "/get_reward", None, b"", {}, 400, "empty"),
    ("body over the limit", "POST", "/get_reward", {"query": ["x" * 5000]}, None, {}, 413, "limit"),
    ("unknown path", "POST", "/score", {"query": ["a"]}, None, {}, 404, "no such path"),
    ("GET /get_reward", "GET", "/get_reward", None, None, {}, 405, "use POST"),
    ("POST /health", "POST", "/health", {}, None, {}, 405, "use GET"),
]
for what, method, path, body, raw, hdr, want, needle in cases:
    s, j = req(bport, method, path, body, hdr, raw)
    check(s == want and isinstance(j, dict) and needle in j.get("error", ""), "bert: %s -> %d %s" % (what, s, j))
s, j = req(bport, "POST", "/get_reward", raw=json.dumps({"query": ["x" * 5000]}).encode(), chunked=True)
check(s == 413, "bert: chunked body over the limit (no Content-Length) -> %d" % s)
for what, hdr, want in (("no key", {}, 401), ("wrong key", {"Authorization": "Bearer nope"}, 401),
                        ("X-API-Key", {"X-API-Key": "s3cret"}, 200), ("Bearer", KEY, 200)):
    s, j = req(gport, "POST", "/get_reward", {"query": ["a b"]}, hdr)
    check(s == want, "gpt2 --api_key: %s -> %d" % (what, s))
stop.set()
for t in ths: t.join()
check(not bg_err and bg_n[0] > 0, "background clients during the bad requests: %d answers, errors %s" % (bg_n[0], bg_err[:2]))

# load: 16 clients x 50 requests of 1..3 rows, every answer checked
errs = []; count = [0]; lock = threading.Lock()
def client(i):
    for n in range(50):
        k = (i * 7 + n) % len(P); m = 1 + (i + n) % 3
        ks = [(k + t) % len(P) for t in range(m)]
        try:
            s, j = req(bport, "POST", "/get_reward", {"prompt": [P[t] for t in ks], "response": [R[t] for t in ks]})
            ok = s == 200 and close(j["rewards"], [ref["bert"][0][t] for t in ks])
        except Exception as e:
            ok, s, j = False, repr(e), None
        with lock:
            count[0] += 1
            if not ok: errs.append((s, j))
ths = [threading.Thread(target=client, args=(i,)) for i in range(16)]
for t in ths: t.start()
for t in ths: t.join()
check(count[0] == 800 and not errs, "load: 16 clients x 50 requests: %d answers, %d errors %s" % (count[0], len(errs), errs[:2]))
sys.exit(1 if bad else 0)
EOF

# SIGTERM with requests in flight: each is answered, then exit 0
python3 - "$W" "$BERT_PORT" "$BERT_PID" <<'EOF' || fail "SIGTERM with requests in flight (above)"
import http.client, json, os, signal, sys, threading, time
W, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = []
def one():
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/get_reward", body=json.dumps({"query": ["some text to score " * 20] * 8}))
        r = c.getresponse(); res.append(r.status); r.read()
    except Exception as e: res.append(repr(e))
ths = [threading.Thread(target=one) for _ in range(8)]
for t in ths: t.start()
time.sleep(0.05)
os.kill(pid, signal.SIGTERM)
for t in ths: t.join()
# every request either was answered 200 or (sent after the listener closed) was refused a connection
ok = all(r == 200 or "Connection refused" in str(r) for r in res) and res.count(200) >= 1
print(("ok   " if ok else "FAIL ") + "SIGTERM during 8 requests: %s" % res)
sys.exit(0 if ok else 1)
EOF
serve_stop BERT
[ "$BERT_RC" = 0 ] || fail "bert server: exit $BERT_RC after SIGTERM: $(tail -n 2 "$W/BERT.log")"
grep -q "stopped:" "$W/BERT.log" || fail "no 'stopped' line: $(tail -n 2 "$W/BERT.log")"
kill -INT "$GPT_PID"
serve_stop GPT
[ "$GPT_RC" = 0 ] || fail "gpt2 server: exit $GPT_RC after SIGINT"

# bad flags and models: exit 2 with the flag named; a port in use: exit 1
expect() {  # WANT_RC PATTERN ARGS...
  local want=$1 pat=$2
  shift 2
  timeout 60 "$RLHF" serve "$@" >"$W/out" 2>"$W/err"
  local rc=$?
  [ "$rc" = "$want" ] && grep -q -- "$pat" "$W/err" || fail "serve $*: exit $rc (want $want), $(cat "$W/err")"
}
expect 2 "--model_name_or_path is required" --port 0
expect 2 "--port" --model_name_or_path "$W/bert" --port 70000
expect 2 "--batch_size" --model_name_or_path "$W/bert" --batch_size 0
expect 2 "--host" --model_name_or_path "$W/bert" --host not-an-address --port 0
expect 2 "--normalize_reward" --model_name_or_path "$W/bert" --normalize_reward --port 0
mkdir -p "$W/notok" && cp "$W/bert/config.json" "$W/bert/model.safetensors" "$W/notok/"
expect 2 "no tokenizer files" --model_name_or_path "$W/notok" --port 0
serve_start HOLD --model_name_or_path "$W/bert" --threads 1 || exit 1
expect 1 "cannot listen" --model_name_or_path "$W/bert" --port "$HOLD_PORT"
serve_stop HOLD

[ "$fails" = 0 ] && echo "serve: all checks passed" || echo "serve: $fails failed"
[ "$fails" = 0 ]
