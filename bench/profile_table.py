"""Turn `perf script -F time,ip,sym,dso` (stdin) of one bench run into a markdown roofline table (bench/profile.sh).

usage: perf script -F time,ip,sym,dso ... | python3 bench/profile_table.py NAME MARKS_FILE BENCH_JSON SYSTEM_JSON
"""
import collections
import json
import re
import sys

name, marks_path, bench_path, system_path = sys.argv[1:5]
marks = []
for line in open(marks_path):
    f = line.split()
    if len(f) == 4 and f[0] == "mark":
        marks.append((f[1], float(f[2]), float(f[3])))
steps = len([m for m in marks if m[0] == "forward"])
bench = json.loads(open(bench_path).read().strip().splitlines()[-1])
peak_gf, triad = 0.0, 0.0
for line in open(system_path):
    r = json.loads(line)
    peak_gf = max(peak_gf, r.get("gflops", 0))
    triad = max(triad, r.get("triad_gbs", 0))

GROUPS = [  # (group, dso regex, symbol regex)
    ("GEMM (OpenBLAS)", r"openblas", r""),
    ("OpenMP (barriers, waiting)", r"gomp", r""),
    ("attention: mask, scale, softmax, dropout of probs", r"", r"^(attention_|masked_softmax_row|key_block|row_block|softcap_block|visible_range)"),
    ("softmax", r"", r"^softmax_"),
    ("layer norm", r"", r"(layernorm|rmsnorm)"),
    ("GELU", r"", r"(gelu|activation_|tanh_)"),
    ("dropout (hidden)", r"", r"(dropout|apply_mask)"),
    ("embedding", r"", r"^embedding_"),
    ("bias, residual adds", r"", r"(fill_bias|bias_backward|add_forward)"),
    ("loss", r"", r"(cross_entropy|pairwise|row_logsumexp|logprob)"),
    ("optimizer (clip, AdamW)", r"", r"(adamw|clip_grad)"),
    ("memset / memcpy", r"libc", r"(mem|__)"),
    ("kernel (page faults, zeroing)", r"kernel", r""),
]


def group(dso, sym):
    for g, d, s in GROUPS:
        if (not d or re.search(d, dso)) and (not s or re.search(s, sym)):
            if d or s:
                return g
    return "other"


counts = collections.defaultdict(lambda: collections.Counter())
for line in sys.stdin:  # "TIME:  IP SYMBOL (DSO)" from perf script -F time,ip,sym,dso
    m = re.match(r"\s*(\d+\.\d+):\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
    if not m:
        continue
    t, sym, dso = float(m.group(1)), m.group(2), m.group(3)
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    for ph, a, b in marks:
        if a <= t < b:
            counts[ph][group(dso, sym)] += 1
            break

ph_time = collections.Counter()
for ph, a, b in marks:
    ph_time[ph] += (b - a) / max(steps, 1)
step_s = sum(ph_time.values())

# Analytic work per step.
if name.startswith("bert"):
    H, L, I, T, P = {"bert-base": (768, 12, 3072, 256, 8), "bert-mini": (256, 4, 1024, 128, 8)}[name]
    S = 2 * P
    N = S * T
    NH = H // 64
    V = 30522
    fwd_flops = 2.0 * N * L * (4 * H * H + 2 * H * I) + 2.0 * S * L * 2 * T * T * H
    n_ln = 2 * L + 1
    act_elems = N * I * L
    probs = S * NH * T * T * L
    shape = "BertForSequenceClassification H %d, L %d, %d pairs x %d tokens, dropout 0.1" % (H, L, P, T)
    n_params = V * H + 512 * H + 2 * H + L * (4 * H * H + 2 * H * I + 9 * H + I) + H * H + H + H + 1
else:
    C, L, B, T, V = 768, 12, 4, 128, 50257
    N = B * T
    H, I, NH = C, 4 * C, 12
    fwd_flops = 2.0 * N * L * 12 * C * C + 2.0 * B * L * 2 * T * T * C + 2.0 * N * C * V
    n_ln = 2 * L + 1
    act_elems = N * I * L
    probs = B * NH * T * T * L
    shape = "GPT2LMHeadModel C 768, L 12, B 4 x T 128, vocabulary 50257, no dropout"
    n_params = V * C + 1024 * C + L * (12 * C * C + 13 * C) + 2 * C
work = {  # (phase, group) -> ("GFLOP/s", flops) or ("GB/s", bytes)
    ("forward", "GEMM (OpenBLAS)"): ("flop", fwd_flops),
    ("backward", "GEMM (OpenBLAS)"): ("flop", 2 * fwd_flops),
    ("forward", "layer norm"): ("byte", 4.0 * 2 * N * H * n_ln),
    ("backward", "layer norm"): ("byte", 4.0 * 4 * N * H * n_ln),  # x, dy, dx, + the residual's gradient
    ("forward", "GELU"): ("byte", 4.0 * 2 * act_elems),
    ("backward", "GELU"): ("byte", 4.0 * 3 * act_elems),
    ("forward", "attention: mask, scale, softmax, dropout of probs"): ("byte", 4.0 * 2 * probs),
    ("backward", "attention: mask, scale, softmax, dropout of probs"): ("byte", 4.0 * 3 * probs),
    ("optimizer", "optimizer (clip, AdamW)"): ("byte", 4.0 * 8 * n_params),  # clip reads g; AdamW p,g,m,v in, p,m,v out
}
print("### %s: %.2f s/step (forward %.2f, backward %.2f, optimizer %.2f; %d timed steps)" % (
    name, step_s, ph_time["forward"], ph_time["backward"], ph_time["optimizer"], steps))
print()
print("%s; %.0f GFLOP per step in GEMMs (forward %.0f). Peaks: sgemm %.0f GFLOP/s, triad %.1f GB/s." % (
    shape, 3 * fwd_flops / 1e9, fwd_flops / 1e9, peak_gf, triad))
print()
print("| phase | kernel group | s/step | share of step | achieved | of peak |")
print("|---|---|---|---|---|---|")
rows = []
for ph in ("forward", "backward", "optimizer"):
    tot = sum(counts[ph].values())
    for g, c in counts[ph].most_common():
        sec = ph_time[ph] * c / tot if tot else 0
        if sec / step_s < 0.005:
            continue
        ach, frac = "", ""
        w = work.get((ph, g))
        if w and sec > 0:
            if w[0] == "flop":
                v = w[1] / sec / 1e9
                ach, frac = "%.0f GFLOP/s" % v, "%.0f%%" % (100 * v / peak_gf) if peak_gf else ""
            else:
                v = w[1] / sec / 1e9
                ach, frac = "%.1f GB/s" % v, "%.0f%%" % (100 * v / triad) if triad else ""
        print("| %s | %s | %.3f | %.1f%% | %s | %s |" % (ph, g, sec, 100 * sec / step_s, ach, frac))
