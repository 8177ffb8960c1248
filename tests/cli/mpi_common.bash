# Shared by tests/cli/mpi_*.sh (sourced; not a test itself): the mpirun line of a two-host run on loopback
# TCP, and comparisons of training logs and safetensors files in plain python3 (no numpy).
command -v mpirun >/dev/null || { echo "FAIL: mpirun not found (scripts/install-deps.sh installs openmpi-bin)"; exit 1; }
MPIRUN=(mpirun -np 2 --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
export OMPI_MCA_btl_vader_single_copy_mechanism=none  # no CMA in containers without ptrace rights
# Under ASan (make test-asan) OpenMPI's own start-up allocations, many in plugins it dlopens and unloads
# (so LeakSanitizer cannot even name them), are reported as leaks at exit. Address and UB checks stay on;
# leak checking of rlhf's own code is done by the single-process tests, which run the same trainers.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"

# close_logs A B COLS [ABS]: the named columns of two training_log.csv files agree within 1e-4 relative
# plus ABS absolute (default 1e-6, for values near 0), row by row, and have the same rows. PPO's losses are
# means of terms of size ~1 (whitened advantages) that cancel to ~1e-2: their rounding is absolute.
close_logs() {
  /usr/bin/python3 - "$1" "$2" "$3" "${4:-1e-6}" <<'PY'
import csv, sys
a = list(csv.DictReader(open(sys.argv[1]))); b = list(csv.DictReader(open(sys.argv[2]))); tol = float(sys.argv[4])
if len(a) != len(b): sys.exit(f"{len(a)} rows vs {len(b)}")
for ra, rb in zip(a, b):
    for c in sys.argv[3].split(","):
        if (ra[c] == "") != (rb[c] == ""): sys.exit(f"step {ra['step']} {c}: '{ra[c]}' vs '{rb[c]}'")
        if ra[c] == "": continue
        x, y = float(ra[c]), float(rb[c])
        if abs(x - y) > 1e-4 * max(abs(x), abs(y)) + tol: sys.exit(f"step {ra['step']} {c}: {x} vs {y}")
PY
}

# close_weights A B: every tensor of two safetensors files within 1e-4 of its largest magnitude. Skipped:
# tensors whose exact gradient is zero (attention key biases: softmax ignores a shift shared by all keys; a
# pairwise reward head's bias cancels in r_c - r_r; the key third of GPT-2's fused c_attn bias). Their
# computed gradients are rounding noise, which AdamW normalises into lr-sized steps of random sign, so no
# two summation orders agree on them.
close_weights() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, struct, sys, array
def load(p):
    raw = open(p, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n]); out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        s, e = v["data_offsets"]; a = array.array("f"); a.frombytes(raw[8 + n + s:8 + n + e]); out[k] = a
    return out
A, B = load(sys.argv[1]), load(sys.argv[2]); bad = []
if A.keys() != B.keys(): sys.exit("different tensors")
for k in A:
    if k.endswith("key.bias") or k in ("classifier.bias", "score.bias"): continue
    x, y = A[k], B[k]
    if k.endswith("attn.c_attn.bias"):
        c = len(x) // 3; x, y = x[:c] + x[2 * c:], y[:c] + y[2 * c:]
    m = max((abs(v) for v in x), default=0.0); d = max((abs(u - v) for u, v in zip(x, y)), default=0.0)
    if d > 1e-4 * m + 1e-7: bad.append(f"{k}: max difference {d} (largest value {m})")
if bad: sys.exit("; ".join(bad))
PY
}

# tiny_bert DIR: a 2-layer BERT reward model with weights large enough that rewards differ visibly.
tiny_bert() {
  cat >"$1.json" <<'JSON'
{"architectures": ["BertForSequenceClassification"], "model_type": "bert", "vocab_size": 30522,
 "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
 "type_vocab_size": 2, "initializer_range": 0.3, "pad_token_id": 0, "num_labels": 1}
JSON
  "$RLHF" init --config "$1.json" --tokenizer tests/fixtures/tokenizers/bert-base-uncased --output_dir "$1" \
    --seed 2 >/dev/null 2>&1
}
