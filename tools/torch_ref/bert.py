"""BertForSequenceClassification in plain PyTorch, following transformers 4.44.2 modeling_bert.py (eager
attention, absolute positions), with HF's parameter names so a model directory loads by name."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        H, I = c["hidden_size"], c["intermediate_size"]
        self.nh = c["num_attention_heads"]
        eps = c.get("layer_norm_eps", 1e-12)
        self.query, self.key, self.value = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
        self.attn_out, self.attn_ln = nn.Linear(H, H), nn.LayerNorm(H, eps=eps)
        self.inter, self.out, self.out_ln = nn.Linear(H, I), nn.Linear(I, H), nn.LayerNorm(H, eps=eps)
        self.p_hidden = c.get("hidden_dropout_prob", 0.1)
        self.p_attn = c.get("attention_probs_dropout_prob", 0.1)

    def names(self, p):
        return {
            p + "attention.self.query": self.query, p + "attention.self.key": self.key,
            p + "attention.self.value": self.value, p + "attention.output.dense": self.attn_out,
            p + "attention.output.LayerNorm": self.attn_ln, p + "intermediate.dense": self.inter,
            p + "output.dense": self.out, p + "output.LayerNorm": self.out_ln,
        }

    def forward(self, x, ext_mask):
        B, T, H = x.shape
        hd = H // self.nh
        sh = lambda t: t.view(B, T, self.nh, hd).transpose(1, 2)
        q, k, v = sh(self.query(x)), sh(self.key(x)), sh(self.value(x))
        s = q @ k.transpose(-1, -2) / math.sqrt(hd) + ext_mask
        p = F.dropout(F.softmax(s, dim=-1), self.p_attn, self.training)
        ctx = (p @ v).transpose(1, 2).reshape(B, T, H)
        a = self.attn_ln(F.dropout(self.attn_out(ctx), self.p_hidden, self.training) + x)
        h = self.out(F.gelu(self.inter(a)))
        return self.out_ln(F.dropout(h, self.p_hidden, self.training) + a)


class BertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        H = c["hidden_size"]
        nl = len(c["id2label"]) if "id2label" in c else c.get("num_labels", 2)
        self.word = nn.Embedding(c["vocab_size"], H, padding_idx=c.get("pad_token_id", 0))
        self.pos = nn.Embedding(c["max_position_embeddings"], H)
        self.tok = nn.Embedding(c.get("type_vocab_size", 2), H)
        self.emb_ln = nn.LayerNorm(H, eps=c.get("layer_norm_eps", 1e-12))
        self.layers = nn.ModuleList([BertLayer(c) for _ in range(c["num_hidden_layers"])])
        self.pooler = nn.Linear(H, H)
        self.classifier = nn.Linear(H, nl)
        self.p_hidden = c.get("hidden_dropout_prob", 0.1)
        cd = c.get("classifier_dropout")
        self.p_cls = self.p_hidden if cd is None else cd

    def modules_by_hf_name(self):
        m = {"bert.embeddings.word_embeddings": self.word, "bert.embeddings.position_embeddings": self.pos,
             "bert.embeddings.token_type_embeddings": self.tok, "bert.embeddings.LayerNorm": self.emb_ln,
             "bert.pooler.dense": self.pooler, "classifier": self.classifier}
        for i, l in enumerate(self.layers):
            m.update(l.names("bert.encoder.layer.%d." % i))
        return m

    def hf_named_parameters(self):
        out = []
        for name, mod in self.modules_by_hf_name().items():
            for pn, p in mod.named_parameters(recurse=False):
                out.append((name + "." + pn, p))
        return out

    def load_hf(self, tensors):
        with torch.no_grad():
            for name, p in self.hf_named_parameters():
                p.copy_(tensors[name])

    def forward(self, ids, mask, types=None):
        B, T = ids.shape
        if types is None:
            types = torch.zeros_like(ids)
        pos = torch.arange(T).unsqueeze(0).expand(B, T)
        x = self.emb_ln(self.word(ids) + self.pos(pos) + self.tok(types))
        x = F.dropout(x, self.p_hidden, self.training)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for l in self.layers:
            x = l(x, ext)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        return self.classifier(F.dropout(pooled, self.p_cls, self.training))


def decay_groups(model, weight_decay):
    """HF Trainer's groups: no weight decay for biases and LayerNorm weights."""
    decay, no_decay = [], []
    for name, p in model.hf_named_parameters():
        (no_decay if name.endswith(".bias") or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
