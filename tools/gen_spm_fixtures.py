#!/usr/bin/python3
"""Writes the tokenizer.json that transformers 4.44's converters (convert_slow_tokenizer.py: LlamaConverter,
GemmaConverter, DebertaV2Converter) and the fast classes' __init__ (added tokens, update_post_processor) build from
each SentencePiece model under tests/fixtures/tokenizers/spm/, for tools/gen_spm_ids.js to encode with the Hugging
Face tokenizers Rust core. transformers cannot be installed here, so this re-implements that logic from its source;
src/tokenizer/spm.c implements the same in C and tests/test_tokenizer_spm.c compares the two on the ids.

Also prints how often SentencePiece itself (the slow tokenizer's backend, python3-sentencepiece) gives the same ids
as the converted tokenizer on the texts, as a second check of the conversion.

Usage (Debian: scripts/install-deps.sh --tools): /usr/bin/python3 tools/gen_spm_fixtures.py OUT_DIR, then
node tools/gen_spm_ids.js OUT_DIR; /usr/bin/python3 tools/gen_spm_fixtures.py --check-slow compares with SentencePiece.
"""
import base64
import json
import os
import sys

from sentencepiece import sentencepiece_model_pb2 as model_pb2

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SPM = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "spm")
META = "\u2581"

# name -> (directory, model file, tokenizer_config.json overrides): the variants share a model file
FIXTURES = {
    "llama-bpe": ("llama-bpe", "tokenizer.model", None),
    "llama-bpe-nobf": ("llama-bpe-nobf", "tokenizer.model", None),
    "llama-unigram": ("llama-unigram", "tokenizer.model", None),
    "gemma": ("gemma", "tokenizer.model", None),
    "deberta-v2": ("deberta-v2", "spm.model", None),
    "deberta-v2-lower-punct": ("deberta-v2", "spm.model",
                               {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": True, "split_by_punct": True}),
}


def load_json(path):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def kind_of(cfg, mcfg, file):
    cls = cfg.get("tokenizer_class")
    if cls:
        cls = cls[:-4] if cls.endswith("Fast") else cls
        return {"LlamaTokenizer": "llama", "CodeLlamaTokenizer": "llama", "GemmaTokenizer": "gemma",
                "DebertaV2Tokenizer": "deberta"}[cls]
    mt = mcfg.get("model_type")
    if mt:
        return {"llama": "llama", "mistral": "llama", "mixtral": "llama", "gemma": "gemma", "gemma2": "gemma",
                "deberta-v2": "deberta"}[mt]
    return "deberta" if file == "spm.model" else "llama"


def special(cfg, key, default):
    if key not in cfg:
        return default
    v = cfg[key]
    return v if isinstance(v, str) or v is None else v.get("content")


def generate_merges(vocab, vocab_scores):
    """SentencePieceExtractor.extract(vocab_scores) of transformers 4.44: every split of a piece into two pieces,
    each piece's splits ordered by the ids of (left, right), then all sorted by the piece's score, descending."""
    vocab_scores = dict(vocab_scores)
    merges = []
    for merge, piece_score in vocab_scores.items():
        local = []
        for index in range(1, len(merge)):
            piece_l, piece_r = merge[:index], merge[index:]
            if piece_l in vocab and piece_r in vocab:
                local.append((piece_l, piece_r, piece_score))
        local = sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges = sorted(merges, key=lambda val: val[2], reverse=True)
    return [[a, b] for a, b, _ in merges]


def added(content, special, **flags):
    t = {"id": 0, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": special}
    t.update(flags)
    return t


def convert(model_path, cfg, mcfg, file):
    m = model_pb2.ModelProto()
    with open(model_path, "rb") as f:
        m.ParseFromString(f.read())
    kind = kind_of(cfg, mcfg, file)
    pieces = [(p.piece, p.score) for p in m.pieces]
    ts = m.trainer_spec
    # the converter's vocab()
    if kind == "llama":
        vocab_scores = [(pieces[i][0], 0.0) for i in range(3)] + pieces[3:]
    elif kind == "gemma":
        vocab_scores = [(special(cfg, "pad_token", "<pad>"), 0.0), (special(cfg, "eos_token", "<eos>"), 0.0),
                        (special(cfg, "bos_token", "<bos>"), 0.0)]
        vocab_scores += [("\t", s) if p == "<0x09>" else (p, s) for p, s in pieces[3:]]
    else:
        vocab_scores = list(pieces)
    handle_byte_fallback = kind != "deberta"
    unk_id = {"llama": 0, "gemma": 3}.get(kind, ts.unk_id)
    if ts.model_type == 1:
        model = {"type": "Unigram", "unk_id": unk_id, "vocab": [[p, s] for p, s in vocab_scores],
                 "byte_fallback": handle_byte_fallback}
    else:
        ex_vocab = {p: i for i, (p, _) in enumerate(pieces)}   # SentencePieceExtractor: sp.id_to_piece
        if kind == "gemma" and "<0x09>" in ex_vocab:             # GemmaSentencePieceExtractor's tab alias
            ex_vocab["\t"] = ex_vocab["<0x09>"]
        model = {"type": "BPE", "dropout": None, "unk_token": ts.unk_piece, "continuing_subword_prefix": None,
                 "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": handle_byte_fallback,
                 "ignore_merges": False, "vocab": {w: i for i, (w, _) in enumerate(vocab_scores)},
                 "merges": generate_merges(ex_vocab, vocab_scores)}
    # added tokens: control (special) and user-defined pieces, then the fast __init__'s additions
    special_names = {"<start_of_turn>", "<end_of_turn>"} if kind == "gemma" else set()
    at = [added(p.piece, p.type == 3 or p.piece in special_names) for p in m.pieces if p.type in (3, 4)]
    have = lambda c: any(t["content"] == c for t in at)
    for idx, e in sorted(((int(k), v) for k, v in cfg.get("added_tokens_decoder", {}).items()), key=lambda x: x[0]):
        if not have(e["content"]):
            t = added(e["content"], e.get("special", False), single_word=e.get("single_word", False),
                      lstrip=e.get("lstrip", False), rstrip=e.get("rstrip", False),
                      normalized=e.get("normalized", not e.get("special", False)))
            t["id"] = idx
            at.append(t)
    defaults = {"llama": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
                "gemma": {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"},
                "deberta": {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
                            "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}}[kind]
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
        tok = special(cfg, key, defaults.get(key))
        if tok and not have(tok):
            at.append(added(tok, True))
    for e in cfg.get("additional_special_tokens", []):
        tok = e if isinstance(e, str) else e["content"]
        if not have(tok):
            at.append(added(tok, True))
    out = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": at, "normalizer": None,
           "pre_tokenizer": None, "post_processor": None, "decoder": None, "model": model}
    legacy, prefix = cfg.get("legacy", True), cfg.get("add_prefix_space", True)
    if kind == "llama":
        if legacy:
            seq = ([{"type": "Prepend", "prepend": META}] if prefix else []) + [
                {"type": "Replace", "pattern": {"String": " "}, "content": META}]
            out["normalizer"] = {"type": "Sequence", "normalizers": seq}
        else:
            out["pre_tokenizer"] = {"type": "Metaspace", "replacement": META,
                                    "prepend_scheme": "first" if prefix else "never", "split": False}
    elif kind == "gemma":
        out["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": META}
    else:
        ns = [{"type": "Lowercase"}] if cfg.get("do_lower_case", False) else []
        ns.append({"type": "Strip", "strip_left": True, "strip_right": True})
        if m.normalizer_spec.precompiled_charsmap:
            ns.append({"type": "Precompiled",
                       "precompiled_charsmap": base64.b64encode(m.normalizer_spec.precompiled_charsmap).decode()})
        ns.append({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})
        out["normalizer"] = {"type": "Sequence", "normalizers": ns}
        scheme = "always" if prefix else "never"
        ps = [{"type": "Punctuation", "behavior": "Isolated"}] if cfg.get("split_by_punct", False) else []
        ps.append({"type": "Metaspace", "replacement": META, "prepend_scheme": scheme, "split": True})
        out["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": ps}
        out["decoder"] = {"type": "Metaspace", "replacement": META, "prepend_scheme": scheme, "split": True}
    if kind != "deberta":
        ds = [{"type": "Replace", "pattern": {"String": META}, "content": " "}, {"type": "ByteFallback"},
              {"type": "Fuse"}]
        if kind == "llama" and prefix:
            ds.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
        out["decoder"] = {"type": "Sequence", "decoders": ds}
    # the post-processor needs final ids: gen_spm_ids.js adds it once the Rust core has assigned them
    if kind == "deberta":
        out["_post"] = {"pre": "[CLS]", "post": "[SEP]", "pre_on_b": False, "unk_id": unk_id}
    else:
        out["_post"] = {"pre": special(cfg, "bos_token", defaults["bos_token"]) if cfg.get("add_bos_token", True) else None,
                        "post": special(cfg, "eos_token", defaults["eos_token"]) if cfg.get("add_eos_token", False) else None,
                        "pre_on_b": True, "unk_id": None}
    return out, kind


def check_slow():
    """SentencePiece's own encode (the slow tokenizer's backend) against the fast ids in the committed jsonl files:
    equal except where the converters knowingly differ (whitespace-run removal, NFKC, control-symbol text)."""
    import sentencepiece as spm
    for name, (d, file, override) in FIXTURES.items():
        sp = spm.SentencePieceProcessor(model_file=os.path.join(SPM, d, file))
        same = total = 0
        with open(os.path.join(SPM, name + ".jsonl")) as f:
            for line in f:
                row = json.loads(line)
                if row["pair"] is not None:
                    continue
                text = row["text"].lower() if override and override.get("do_lower_case") else row["text"]
                total += 1
                same += sp.encode(text) == row["ids_no_special"]
        print(f"{name}: SentencePiece == converted on {same}/{total} texts")


def main():
    if sys.argv[1] == "--check-slow":
        return check_slow()
    out_dir = sys.argv[1]
    for name, (d, file, override) in FIXTURES.items():
        cfg = override if override is not None else load_json(os.path.join(SPM, d, "tokenizer_config.json"))
        mcfg = load_json(os.path.join(SPM, d, "config.json"))
        tj, kind = convert(os.path.join(SPM, d, file), cfg, mcfg, file)
        os.makedirs(os.path.join(out_dir, name), exist_ok=True)
        with open(os.path.join(out_dir, name, "tokenizer.json"), "w") as f:
            json.dump(tj, f, ensure_ascii=False)
        print(f"{name}: {kind}, {len(tj['model']['vocab'])} pieces, "
              f"{len(tj['model'].get('merges', []))} merges, {len(tj['added_tokens'])} added tokens")


if __name__ == "__main__":
    main()
