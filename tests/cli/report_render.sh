#!/usr/bin/env bash
# report.html (issue 9): the inline SVG curves hold exactly the values of training_log.csv (loss per logged
# step, eval accuracy per evaluation), and the page renders in headless Chromium to a non-blank screenshot.
# Issue 14: every axis ticks at round values (multiples of 1, 2 or 5 x 10^k); sft plots eval loss beside
# train loss (both equal to the CSV); ppo draws the policy and value losses on separate axes and shows a
# table of the sample prompts and completions of samples.jsonl.
# Chromium comes from `scripts/install-deps.sh --report` (CI installs it); without it the render half says so.
set -euo pipefail
RLHF=$1
W=$(mktemp -d -t rlhf-report.XXXXXX)
trap 'rm -rf "$W"' EXIT
head -n 96 data/learn-demo/train.jsonl >"$W/train.jsonl"
"$RLHF" init --config configs/tiny-bert-reward.json --tokenizer tests/fixtures/tokenizers/bert-base-uncased \
  --output_dir "$W/init" --seed 2 >/dev/null 2>&1
"$RLHF" reward --model_name_or_path "$W/init" --dataset_name "$W/train.jsonl" --eval_dataset_name data/learn-demo/eval.jsonl \
  --output_dir "$W/rm" --num_train_epochs 2 --learning_rate 5e-4 --per_device_train_batch_size 8 --logging_steps 2 \
  --save_strategy no --threads 2 --quiet >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
/usr/bin/python3 - "$W/rm/training_log.csv" "$W/rm/report.html" <<'PY'
import csv, html, re, sys
rows = list(csv.DictReader(open(sys.argv[1])))
page = open(sys.argv[2], encoding="utf-8").read()
series = {html.unescape(n): [tuple(map(float, p.split(":"))) for p in pts.split()]
          for n, pts in re.findall(r'<polyline[^>]*data-series="([^"]*)"[^>]*data-points="([^"]*)"', page)}
def column(name):
    return [(float(r["step"]), float(r[name])) for r in rows if r.get(name, "").strip()]
fails = 0
for label, col in (("train loss", "loss"), ("eval accuracy", "eval_accuracy")):
    want, got = column(col), series.get(label)
    ok = got is not None and len(got) == len(want) and all(
        gx == wx and abs(gy - wy) <= 1e-6 * max(1.0, abs(wy)) for (gx, gy), (wx, wy) in zip(got, want))
    print("%s %s: %d CSV values, SVG series %r has %s" % ("PASS" if ok else "FAIL", col, len(want), label,
                                                          "the same" if ok else got))
    fails += not ok
print("svg charts: %d" % page.lower().count("<svg"))
sys.exit(1 if fails else 0)
PY
# ---- round ticks (reward report), sft train + eval loss, ppo losses apart and the samples table
/usr/bin/python3 - "$W/rm/report.html" "$W" <<'PY'
import sys; sys.path.insert(0, "tests/cli/lib")
from report_ticks import check_ticks
check_ticks(open(sys.argv[1]).read(), "reward")
print("PASS reward report: every axis at round ticks")
PY
cat >"$W/lm.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 50257, "n_embd": 16, "n_layer": 1,
 "n_head": 2, "n_positions": 64, "bos_token_id": 50256, "eos_token_id": 50256}
JSON
"$RLHF" init --config "$W/lm.json" --tokenizer tests/fixtures/tokenizers/gpt2 --output_dir "$W/lm" --seed 1 >/dev/null 2>&1
for i in $(seq 0 15); do echo "{\"prompt\": \"Q: $i plus $i?\", \"completion\": \" A: $((2 * i))\"}"; done >"$W/sft.jsonl"
"$RLHF" sft --model_name_or_path "$W/lm" --dataset_name "$W/sft.jsonl" --output_dir "$W/sft" --eval_split 0.25 \
  --num_train_epochs 3 --learning_rate 1e-2 --per_device_train_batch_size 4 --logging_steps 1 --save_strategy no \
  --threads 2 --quiet >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
/usr/bin/python3 - "$W/sft/training_log.csv" "$W/sft/report.html" "$W" <<'PY'
import csv, sys; sys.path.insert(0, "tests/cli/lib")
from report_ticks import check_ticks, series
rows = list(csv.DictReader(open(sys.argv[1])))
page = open(sys.argv[2]).read()
check_ticks(page, "sft")
s = series(page)
for label, col in (("train loss", "loss"), ("eval loss", "eval_loss")):
    want = [(float(r["step"]), float(r[col])) for r in rows if r[col].strip()]
    got = s[label][0]
    assert len(want) >= 3 and len(got) == len(want), (label, got, want)
    assert all(g[0] == w[0] and abs(g[1] - w[1]) <= 1e-6 * max(1, abs(w[1])) for g, w in zip(got, want)), (label, got, want)
assert s["train loss"][1] == s["eval loss"][1], "train and eval loss are not on one chart"
print("PASS sft report: train loss and eval loss on one chart, equal to training_log.csv; round ticks")
PY
fail() { echo "FAIL: $*"; exit 1; }
(W="$W/pp" && mkdir "$W" && fails=0 && . tests/cli/ppo_fixture.bash)
"$RLHF" ppo --model_name_or_path "$W/pp/policy" --sft_model_path "$W/pp/policy" --reward_model_path "$W/pp/rm" \
  --dataset_name "$W/pp/prompts.jsonl" --output_dir "$W/ppo" --per_device_train_batch_size 8 --response_length 6 \
  --num_ppo_epochs 1 --total_episodes 48 --num_sample_generations 3 --threads 2 --quiet >"$W/log" 2>&1 ||
  { cat "$W/log"; exit 1; }
/usr/bin/python3 - "$W/ppo/samples.jsonl" "$W/ppo/report.html" "$W" <<'PY'
import html, json, re, sys; sys.path.insert(0, "tests/cli/lib")
from report_ticks import check_ticks, series
samples = [json.loads(l) for l in open(sys.argv[1])]
page = open(sys.argv[2]).read()
check_ticks(page, "ppo")
s = series(page)
assert s["loss/policy_avg"][1] != s["loss/value_avg"][1], "policy and value losses share an axis"
table = re.search(r'<table class="samples">(.*?)</table>', page, re.S)
assert table, "no samples table"
rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", table.group(1), re.S)
assert len(samples) >= 6 and len(rows) == len(samples), (len(rows), len(samples))
for (step, prompt, completion, score), smp in zip(rows, samples):
    assert step.startswith("%d " % smp["step"]), (step, smp)
    assert html.unescape(prompt) == json.dumps(smp["prompt_ids"], separators=(",", ":")), (prompt, smp)
    assert html.unescape(completion) == json.dumps(smp["response_ids"], separators=(",", ":")), (completion, smp)
    assert abs(float(score) - smp["score"]) < 1e-4, (score, smp)
print("PASS ppo report: policy and value losses on separate axes; samples table of %d rows = samples.jsonl; round ticks" % len(rows))
PY
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
  echo "chromium not installed (scripts/install-deps.sh --report): render check not run"
  echo "5 passed, 0 failed"
  exit 0
fi
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$W/chrome" --window-size=1000,1400 \
  --screenshot="$W/shot.png" "file://$W/rm/report.html" >"$W/chrome.log" 2>&1 || { tail -n 5 "$W/chrome.log"; exit 1; }
/usr/bin/python3 - "$W/shot.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, w, h = 8, b"", 0, 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h = struct.unpack(">II", body[:8])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw = zlib.decompress(idat)
distinct = len(set(raw[i:i + 3] for i in range(0, len(raw) - 3, 997)))
print("%s screenshot %dx%d, %d distinct sampled colours" % ("PASS" if distinct > 8 else "FAIL", w, h, distinct))
sys.exit(0 if distinct > 8 else 1)
PY
echo "6 passed, 0 failed"
