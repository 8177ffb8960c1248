"""Summarise interleaved benchmark runs into one markdown row (bench/lib.sh's interleave).

usage: python3 bench/stats.py NAME METRIC higher|lower RLHF_JSONL TORCH_JSONL
"""
import json
import statistics
import sys

name, metric, direction, fa, fb = sys.argv[1:6]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    rows.append({"failed": 1})
    return rows


a, b = load(fa), load(fb)
va = [r[metric] for r in a if metric in r]
vb = [r[metric] for r in b if metric in r]
# per-pair ratios only where both runs of the pair (same index: run i of each side) succeeded
pa = [r.get(metric) for r in a]
pb = [r.get(metric) for r in b]
both = [(x, y) for x, y in zip(pa, pb) if x is not None and y is not None]


def cell(v, fmt):
    if not v:
        return "failed"
    return (fmt + " [" + fmt + "-" + fmt + "]") % (statistics.median(v), min(v), max(v))


fmt = "%.3f" if va and max(va + vb) < 10 else "%.1f"
ratio = "n/a"
if va and vb:
    ma, mb = statistics.median(va), statistics.median(vb)
    pairs = [(x / y if direction == "higher" else y / x) for x, y in both] or [0.0]
    r = ma / mb if direction == "higher" else mb / ma
    ratio = "%.2fx [%.2f-%.2f]" % (r, min(pairs), max(pairs))
ra = max((r.get("peak_rss_mb", 0) for r in a), default=0)
rb = max((r.get("peak_rss_mb", 0) for r in b), default=0)
rss_ratio = "%.0f%%" % (100.0 * ra / rb) if ra and rb else "n/a"
print("| %s | %s | %s | %s | %.0f | %.0f | %s |" % (name, cell(va, fmt), cell(vb, fmt), ratio, ra, rb, rss_ratio))
