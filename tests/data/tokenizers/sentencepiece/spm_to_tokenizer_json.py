#!/usr/bin/env python3
"""Turns a SentencePiece Unigram .model into a tokenizer.json that should segment like the
sentencepiece library, to check the Precompiled normalizer, the Unigram model and Metaspace
against the library's outputs (cases.json). No sentencepiece/protobuf package is needed: the
ModelProto wire format is read directly.

  pieces (ModelProto.1): piece, score, type; NORMAL pieces go in as they are, the others
    (<unk>, <s>, </s>) keep their id but get a text that input can never contain, because the
    library never matches them in text;
  normalizer_spec (ModelProto.3): precompiled_charsmap -> Precompiled; remove_extra_whitespaces
    -> strip leading/trailing spaces and collapse runs of spaces;
  add_dummy_prefix / escape_whitespaces -> Metaspace (prepend "always", split).

Usage: spm_to_tokenizer_json.py test_model.model tokenizer.json
"""
import base64
import json
import struct
import sys


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield f, v


def main(model_path, out_path):
    pieces, trainer, norm = [], {}, {}
    for f, v in fields(open(model_path, "rb").read()):
        if f == 1:
            p = {"type": 1, "score": 0.0}
            for g, x in fields(v):
                if g == 1:
                    p["piece"] = x.decode("utf-8")
                elif g == 2:
                    p["score"] = struct.unpack("<f", x)[0]
                elif g == 3:
                    p["type"] = x
            pieces.append(p)
        elif f == 2:
            trainer = dict(fields(v))
        elif f == 3:
            norm = dict(fields(v))
    assert trainer.get(3, 1) == 1, "only Unigram models"
    vocab = [[p["piece"], p["score"]] if p["type"] == 1 else ["\uffff" + p["piece"], 0.0] for p in pieces]
    normalizers = []
    if norm.get(2):
        normalizers.append({"type": "Precompiled", "precompiled_charsmap": base64.b64encode(norm[2]).decode()})
    if norm.get(4, 1):
        normalizers += [{"type": "Replace", "pattern": {"Regex": "\\A +| +\\z"}, "content": ""},
                        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    bos = next(i for i, p in enumerate(pieces) if p["piece"] == "<s>")
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": trainer.get(40, 0), "vocab": vocab, "byte_fallback": bool(trainer.get(35, 0))},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
