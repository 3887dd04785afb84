#!/usr/bin/env python3
"""Shrinks a BPE tokenizer to what a set of fixture cases can ever touch, so the test data
stays small while the tokenizer behaves identically on those cases.

Why this is exact: during BPE every intermediate symbol of a word ends up inside one of the
word's final tokens, so it is an ancestor of a final token in the merge graph. We keep the
closure S of the case's final tokens under "is produced by a merge of", every merge whose two
sides are in S (with the original relative order, i.e. ranks), the tokens those merges
produce, the 256 byte-fallback tokens and the unk token. Every lookup the reference makes
for these texts (characters, pairs of adjacent symbols, whole words with ignore_merges)
then gives the same answer as with the full files. Added tokens that are not in the model
vocabulary are put into it with their ids, so that ids do not shift with the vocab size.

Usage:
  reduce_bpe.py json  FULL/tokenizer.json CASES.json OUT/tokenizer.json
  reduce_bpe.py files FULL_DIR(vocab.json, merges.txt) CASES.json OUT_DIR
"""
import json
import sys


def case_ids(cases_path):
    cases = json.load(open(cases_path, encoding="utf-8"))["cases"]
    ids = set()
    for c in cases:
        for key in ("ids_with_special", "ids_no_special"):
            ids.update(c.get(key, []))
    return ids


def reduce(vocab, merges, final_ids, prefix="", extra_tokens=()):
    """vocab: token -> id; merges: list of (left, right). Returns (vocab, merges) subsets."""
    id_to_token = {i: t for t, i in vocab.items()}
    producers = {}
    for a, b in merges:
        producers.setdefault(a + b[len(prefix):], []).append((a, b))
    keep = set()
    stack = [id_to_token[i] for i in final_ids if i in id_to_token]
    while stack:
        t = stack.pop()
        if t in keep:
            continue
        keep.add(t)
        for a, b in producers.get(t, ()):
            stack.extend((a, b))
    kept_merges = [(a, b) for a, b in merges if a in keep and b in keep]
    tokens = set(keep)
    tokens.update(a + b[len(prefix):] for a, b in kept_merges)
    tokens.update("<0x%02X>" % b for b in range(256))
    tokens.update(extra_tokens)
    new_vocab = {t: i for t, i in vocab.items() if t in tokens}
    return new_vocab, kept_merges


def split_merge(m):
    return tuple(m) if isinstance(m, list) else tuple(m.split(" "))


def reduce_json(full, cases, out):
    tok = json.load(open(full, encoding="utf-8"))
    model = tok["model"]
    assert model["type"] == "BPE", "only BPE models can be reduced"
    merges = [split_merge(m) for m in model["merges"]]
    extra = [model["unk_token"]] if model.get("unk_token") else []
    vocab, kept = reduce(model["vocab"], merges, case_ids(cases), model.get("continuing_subword_prefix") or "", extra)
    for t in tok.get("added_tokens", []):
        vocab.setdefault(t["content"], t["id"])
    model["vocab"] = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    model["merges"] = [list(m) for m in kept]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{out}: vocab {len(vocab)}, merges {len(kept)}")


def reduce_files(full_dir, cases, out_dir):
    vocab = json.load(open(f"{full_dir}/vocab.json", encoding="utf-8"))
    lines = open(f"{full_dir}/merges.txt", encoding="utf-8").read().split("\n")
    header = [l for l in lines if l.startswith("#version")]
    merges = [tuple(l.split(" ")) for l in lines if l and not l.startswith("#version")]
    new_vocab, kept = reduce(vocab, merges, case_ids(cases), extra_tokens=["<|endoftext|>"])
    with open(f"{out_dir}/vocab.json", "w", encoding="utf-8") as f:
        json.dump(dict(sorted(new_vocab.items(), key=lambda kv: kv[1])), f, ensure_ascii=False)
    with open(f"{out_dir}/merges.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(header + [" ".join(m) for m in kept]) + "\n")
    print(f"{out_dir}: vocab {len(new_vocab)}, merges {len(kept)}")


if __name__ == "__main__":
    mode, full, cases, out = sys.argv[1:5]
    (reduce_json if mode == "json" else reduce_files)(full, cases, out)
