#!/bin/bash
# rlhf score against transformers: pre-tokenized rows through the 1-label and 2-label BERT fixtures, RoBERTa
# and the Qwen2 / Gemma / Gemma 2 / Phi-3 decoder reward models give {"score"} within 1e-4 of HF (1 label:
# the logit; 2 labels: softmax probability of label 1), batched with right padding and one at a time
# alike; pair rows give chosen/rejected scores and a summary whose accuracy, margin and reward statistics
# agree with the rows; the summary is the last stdout line.
set -u
RLHF=${1:?usage: score_fixtures.sh path/to/rlhf}
W=$(mktemp -d -t rlhf-score.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
/usr/bin/python3 - "$RLHF" "$W" <<'PY' || fails=$((fails + 1))
import json, math, os, struct, subprocess, sys
rlhf, W = sys.argv[1], sys.argv[2]

def st_f32(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        s, e = h[name]["data_offsets"]
        f.seek(8 + n + s)
        return struct.unpack("<%df" % ((e - s) // 4), f.read(e - s)), h[name]["shape"]

def run(*args):
    p = subprocess.run([rlhf, "score", "--threads", "1"] + list(args), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout

bad = 0
for fx in ("bert_seqcls_1", "bert_seqcls_2", "roberta_seqcls_1", "qwen2_seqcls_1", "gemma_seqcls_1", "gemma2_seqcls_1",
           "phi3_seqcls_1"):
    F = "tests/fixtures/hf/" + fx
    inp = json.load(open(F + "/inputs.json"))["cases"]["right"]
    rows = []
    for i, ids in enumerate(inp["input_ids"]):
        n = sum(inp["attention_mask"][i])
        r = {"input_ids": ids[:n]}
        if "token_type_ids" in inp:
            r["token_type_ids"] = inp["token_type_ids"][i][:n]
        rows.append(r)
    path = os.path.join(W, fx + ".rows")
    open(path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
    vals, (B, L) = st_f32(F + "/expected.safetensors", "right.logits")
    exp = [vals[i] if L == 1 else 1 / (1 + math.exp(vals[2 * i] - vals[2 * i + 1])) for i in range(B)]
    for bs in ("1", "3"):
        out = os.path.join(W, "%s.%s.jsonl" % (fx, bs))
        summary = json.loads(run("--model_name_or_path", F, "--dataset_name", path, "--per_device_eval_batch_size", bs,
                                 "--output_file", out).strip().splitlines()[-1])
        got = [json.loads(l)["score"] for l in open(out)]
        err = max(abs(g - e) for g, e in zip(got, exp))
        ok = len(got) == B and err <= 1e-4 and summary["n"] == B
        bad += not ok
        print("%s %s batch %s: max |score - HF| %.2g" % ("ok  " if ok else "FAIL", fx, bs, err))
    # pairs: chosen = row i, rejected = row i+1 -> summary agrees with the rows
    pairs = []
    for i in range(B):
        j = (i + 1) % B
        p = {"chosen_ids": rows[i]["input_ids"], "rejected_ids": rows[j]["input_ids"]}
        if "token_type_ids" in rows[i]:
            p["chosen_token_type_ids"], p["rejected_token_type_ids"] = rows[i]["token_type_ids"], rows[j]["token_type_ids"]
        pairs.append(p)
    pairs.append(rows[0])
    ppath = os.path.join(W, fx + ".pairs")
    open(ppath, "w").write("".join(json.dumps(p) + "\n" for p in pairs))
    lines = run("--model_name_or_path", F, "--dataset_name", ppath).strip().splitlines()
    summary, out = json.loads(lines[-1]), [json.loads(l) for l in lines[:-1]]
    sc = [exp[i] for i in range(B)]
    acc = sum(sc[i] > sc[(i + 1) % B] for i in range(B)) / B
    allr = sc + [sc[(i + 1) % B] for i in range(B)] + [sc[0]]
    mean = sum(allr) / len(allr)
    ok = (len(out) == B + 1 and "score" in out[-1] and abs(out[0]["chosen_score"] - sc[0]) < 1e-4 and
          summary["n"] == B + 1 and abs(summary["accuracy"] - acc) < 1e-9 and abs(summary["reward_mean"] - mean) < 1e-4)
    bad += not ok
    print("%s %s pairs + a single row: summary %s" % ("ok  " if ok else "FAIL", fx, lines[-1]))
# --prompt/--response without a tokenizer is a clear input error naming the tokenizer
p = subprocess.run([rlhf, "score", "--model_name_or_path", "tests/fixtures/hf/bert_seqcls_1", "--prompt", "a",
                    "--response", "b"], capture_output=True, text=True)
ok = p.returncode == 2 and "tokenizer" in p.stderr
bad += not ok
print("%s text without tokenizer files: exit %d" % ("ok  " if ok else "FAIL", p.returncode))
sys.exit(1 if bad else 0)
PY
[ "$fails" = 0 ] && echo "score_fixtures: all passed" || { echo "score_fixtures: failed"; exit 1; }
