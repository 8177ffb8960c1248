#!/usr/bin/env python3
"""Reference values for tests/test_train_optim.c, from PyTorch itself.

Writes tests/fixtures/optim/adamw.json (torch.optim.AdamW with HF Trainer's decay / no-decay parameter
groups, torch.nn.utils.clip_grad_norm_, a LambdaLR schedule, 10 steps with given gradients) and
tests/fixtures/optim/schedules.json (the learning rates LambdaLR produces with transformers'
schedule lambdas). transformers is not a dependency: its lambdas from transformers/optimization.py
(get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup, get_constant_schedule,
get_constant_schedule_with_warmup) are restated below.

Run from the repository root:  /usr/bin/python3 tools/gen_optim_reference.py
"""
import json
import math
import os

import torch


def linear_lambda(warmup, total):
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    return f


def cosine_lambda(warmup, total, num_cycles=0.5):
    def f(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
    return f


def constant_lambda(warmup, total):
    return lambda step: 1.0


def constant_warmup_lambda(warmup, total):
    def f(step):
        if step < warmup:
            return float(step) / float(max(1.0, warmup))
        return 1.0
    return f


LAMBDAS = {"linear": linear_lambda, "cosine": cosine_lambda, "constant": constant_lambda,
           "constant_with_warmup": constant_warmup_lambda}


def floats(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def adamw_case(name, seed, lr, sched, warmup, total, betas, eps, wd, max_norm, grad_scales):
    g = torch.Generator().manual_seed(seed)
    shapes = [("dense.weight", (2, 3), False), ("dense.bias", (3,), True), ("norm.weight", (4,), True),
              ("head.weight", (5,), False)]
    params = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=torch.float32)) for _, s, _ in shapes]
    case = {"name": name, "lr": lr, "schedule": sched, "warmup": warmup, "total": total, "beta1": betas[0],
            "beta2": betas[1], "eps": eps, "weight_decay": wd, "max_norm": max_norm,
            "tensors": [{"name": n, "numel": int(p.numel()), "no_decay": nd, "init": floats(p)}
                        for (n, _, nd), p in zip(shapes, params)],
            "steps": []}
    groups = [{"params": [p for p, (_, _, nd) in zip(params, shapes) if not nd], "weight_decay": wd},
              {"params": [p for p, (_, _, nd) in zip(params, shapes) if nd], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, LAMBDAS[sched](warmup, total))
    for scale in grad_scales:
        grads = [scale * torch.randn(p.shape, generator=g, dtype=torch.float32) for p in params]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        step_lr = opt.param_groups[0]["lr"]
        if max_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        else:
            norm = float(torch.norm(torch.stack([torch.norm(gr, 2) for gr in grads]), 2))
        opt.step()
        scheduler.step()
        case["steps"].append({"grads": [floats(gr) for gr in grads], "grad_norm": norm, "lr": step_lr,
                              "params": [floats(p) for p in params]})
    return case


def main():
    out_dir = os.path.join("tests", "fixtures", "optim")
    os.makedirs(out_dir, exist_ok=True)
    # Gradient scales: some steps far above max_norm 1 (clipped), some below (untouched).
    scales = [2.0, 0.1, 1.5, 0.05, 3.0, 0.2, 0.3, 5.0, 0.01, 0.4]
    adamw = [
        adamw_case("decay_groups_clip_linear", 1, 1e-2, "linear", 3, 10, (0.9, 0.999), 1e-8, 0.01, 1.0, scales),
        adamw_case("no_clip_cosine_custom_betas", 2, 5e-3, "cosine", 2, 10, (0.8, 0.99), 1e-6, 0.1, 0.0, scales),
    ]
    with open(os.path.join(out_dir, "adamw.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": adamw}, f, indent=1)
    scheds = []
    for name in LAMBDAS:
        for warmup, total in [(3, 10), (0, 7)]:
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=5e-5)
            sch = torch.optim.lr_scheduler.LambdaLR(opt, LAMBDAS[name](warmup, total))
            lrs = []
            for _ in range(total + 3):   # a few steps past the end as well
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sch.step()
            scheds.append({"type": name, "base_lr": 5e-5, "warmup": warmup, "total": total, "lrs": lrs})
    with open(os.path.join(out_dir, "schedules.json"), "w") as f:
        json.dump({"torch": torch.__version__, "schedules": scheds}, f, indent=1)


if __name__ == "__main__":
    main()
