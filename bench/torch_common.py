"""Shared by the PyTorch peers (torch_ppo.py, torch_grpo.py, torch_qwen25.py): the sampling loop of transformers'
generate as those benchmarks run it."""
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
