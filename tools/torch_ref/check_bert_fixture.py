"""Sanity check of tools/torch_ref/bert.py against the transformers fixture bert_seqcls_1 / bert_seqcls_2:
logits and parameter gradients must agree, or the reference is not a reference."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from bert import BertForSequenceClassification  # noqa: E402
from hfio import load_config, load_safetensors  # noqa: E402

for name in ("bert_seqcls_1", "bert_seqcls_2"):
    d = os.path.join("tests/fixtures/hf", name)
    cfg = load_config(d)
    m = BertForSequenceClassification(cfg)
    m.load_hf(load_safetensors(os.path.join(d, "model.safetensors")))
    m.eval()
    exp = load_safetensors(os.path.join(d, "expected.safetensors"))
    inp = json.load(open(os.path.join(d, "inputs.json")))
    case = inp["cases"]["right"]
    ids, mask = torch.tensor(case["input_ids"]), torch.tensor(case["attention_mask"])
    types = torch.tensor(case["token_type_ids"]) if "token_type_ids" in case else None
    logits = m(ids, mask, types)
    err = (logits - exp["right.logits"]).abs().max().item()
    loss_def = inp["loss"]
    if loss_def["type"] == "pairwise_logsigmoid":
        pairs = loss_def["pairs"]
        loss = torch.stack([-F.logsigmoid(logits[c, 0] - logits[r, 0]) for c, r in pairs]).mean()
    else:
        loss = F.cross_entropy(logits, torch.tensor(loss_def["labels"]))
    loss.backward()
    gerr = 0.0
    for pn, p in m.hf_named_parameters():
        g = exp["grad." + pn]
        gerr = max(gerr, ((p.grad - g).abs() / (g.abs() + 1e-6)).max().item() if g.abs().max() > 1e-6 else 0)
    print("%s: max |logit err| %.2e, loss %.6f vs %.6f, max rel grad err %.2e" % (
        name, err, loss.item(), exp["loss"].item(), gerr))
