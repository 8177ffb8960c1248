"""Shared by the PyTorch peers (torch_ppo.py, torch_grpo.py, torch_qwen25.py): the sampling loop of transformers'
generate as those benchmarks run it, and the step timing of torch_ppo and torch_grpo."""
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F


def sample(model, queries, R, temp):
    """R tokens per row sampled at temperature temp with a KV cache (no stop token), under torch.no_grad() by the
    caller. model(ids, keep=(a, b)) -> (logits of positions a .. b - 1, cache) prefills the prompt (the LM head on
    its last position only, as transformers' logits_to_keep); model(ids, start, cache) -> (logits, cache) decodes."""
    P = queries.shape[1]
    logits, past = model(queries, keep=(P - 1, P))
    toks = []
    for s in range(R):
        nxt = torch.multinomial(F.softmax(logits[:, -1] / temp, -1), 1)
        toks.append(nxt)
        if s + 1 < R:
            logits, past = model(nxt, P + s, past)
    return torch.cat(toks, 1)


def _cpu_times():
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:9]]


def time_steps(step, n, batch, rate_key, time_key):
    """One warm-up call of step(), then n timed; prints one JSON line: rate_key (batch / the median step), time_key
    (the median step), "steps_s" (every timed step), "niced_cpu" (the share of the machine's CPU time that niced
    processes took meanwhile: /proc/stat's "nice" column, as bench/lib.sh's step_times), "peak_rss_mb"."""
    step()
    c0, steps = _cpu_times(), []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        steps.append(time.perf_counter() - t0)
    d = [y - x for x, y in zip(c0, _cpu_times())]
    dt = statistics.median(steps)
    print(json.dumps({rate_key: round(batch / dt, 4), time_key: round(dt, 4), "steps_s": [round(x, 4) for x in steps],
                      "niced_cpu": round(d[1] / max(sum(d), 1), 3),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
