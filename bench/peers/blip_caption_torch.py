#!/usr/bin/python3
"""Pure-PyTorch BLIP captioning: the PyTorch peer of `lumen bench blip`.

HF transformers is not installable here, so this re-implements BlipForConditionalGeneration's
greedy captioning op for op (transformers/models/blip/modeling_blip.py, modeling_blip_text.py),
reading a Hugging Face checkpoint directory (config.json + model.safetensors) with HF's names:
  vision:  BlipVisionModel (patch conv + class token + positions, pre-LN layers with a fused qkv,
           post_layernorm on every token) -> image_embeds [1, T, Dv]
  decoder: BlipTextLMHeadModel (BERT embeddings, post-LN layers: causal self-attention,
           cross-attention to image_embeds, feed-forward; cls.predictions head), with the KV cache
           as transformers keeps it: self-attention keys/values concatenated per step, the
           cross-attention keys/values of the image computed at the first step and reused.
Greedy decoding of a fixed number of tokens (EOS does not stop it), as the benchmark times it.

Run it with Debian's /usr/bin/python3 (python3-torch, python3-numpy), not the pyenv python3.

Modes:
  --verify-fixture CASE_DIR  compare with a golden blip_caption_generate case (same new token ids,
                             step logits within --tol) or blip_caption_forward (logits and
                             image_embeds within --tol); needs the fixture's --model
  --bench                    (default) time --images captions after --warmup, print one JSON line
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Importing the CLIP peer pins OpenBLAS's threads (from --threads) and kernel before torch loads;
# see _configure_blas there. It must come before numpy/torch.
import clip_vision_torch as clip_peer  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import st_io  # noqa: E402


# ----------------------------------------------------------------------------- config

class BlipConfig:
    def __init__(self, model_dir):
        path = os.path.join(model_dir, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        v, t = cfg.get("vision_config"), cfg.get("text_config")
        if v is None or t is None:
            raise KeyError(f"{path}: a BLIP config has vision_config and text_config")
        self.v_hidden = int(v["hidden_size"])
        self.v_layers = int(v["num_hidden_layers"])
        self.v_heads = int(v["num_attention_heads"])
        self.v_mlp = int(v["intermediate_size"])
        self.image = int(v.get("image_size", 384))
        self.patch = int(v.get("patch_size", 16))
        self.v_eps = float(v.get("layer_norm_eps", 1e-5))
        self.v_act = v.get("hidden_act", "gelu")
        self.positions = (self.image // self.patch) ** 2 + 1
        self.vocab = int(t["vocab_size"])
        self.t_hidden = int(t["hidden_size"])
        self.t_layers = int(t["num_hidden_layers"])
        self.t_heads = int(t["num_attention_heads"])
        self.t_mlp = int(t["intermediate_size"])
        self.max_positions = int(t.get("max_position_embeddings", 512))
        self.encoder_hidden = int(t.get("encoder_hidden_size", self.v_hidden))
        self.t_eps = float(t.get("layer_norm_eps", 1e-12))
        self.t_act = t.get("hidden_act", "gelu")
        self.bos = int(t.get("bos_token_id", 30522))
        self.sep = int(t.get("sep_token_id", 102))
        for name, d, h in (("vision", self.v_hidden, self.v_heads), ("text", self.t_hidden, self.t_heads)):
            if d % h:
                raise ValueError(f"{path}: {name} hidden_size {d} not divisible by heads {h}")


# ----------------------------------------------------------------------------- vision

class VisionAttention(nn.Module):  # BlipAttention: one qkv projection
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.projection = nn.Linear(d, d)

    def forward(self, x):  # [B, T, D]
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, T, Dh]
        probs = torch.softmax((q @ k.transpose(-1, -2)) * self.head_dim ** -0.5, dim=-1)
        return self.projection((probs @ v).permute(0, 2, 1, 3).reshape(b, t, d))


class VisionMlp(nn.Module):
    def __init__(self, d, hidden, act):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.act = clip_peer._activation(act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class VisionLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = VisionAttention(c.v_hidden, c.v_heads)
        self.layer_norm1 = nn.LayerNorm(c.v_hidden, eps=c.v_eps)
        self.mlp = VisionMlp(c.v_hidden, c.v_mlp, c.v_act)
        self.layer_norm2 = nn.LayerNorm(c.v_hidden, eps=c.v_eps)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(1, 1, c.v_hidden))
        self.patch_embedding = nn.Conv2d(3, c.v_hidden, c.patch, stride=c.patch)
        self.position_embedding = nn.Parameter(torch.empty(1, c.positions, c.v_hidden))

    def forward(self, pixel_values):  # [B, 3, S, S] -> [B, 1+N, D]
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(patches.shape[0], 1, -1)
        h = torch.cat([cls, patches], dim=1)
        return h + self.position_embedding[:, :h.shape[1], :]


class VisionEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([VisionLayer(c) for _ in range(c.v_layers)])


class VisionModel(nn.Module):  # BlipVisionModel -> last_hidden_state (post_layernorm'd)
    def __init__(self, c):
        super().__init__()
        self.embeddings = VisionEmbeddings(c)
        self.encoder = VisionEncoder(c)
        self.post_layernorm = nn.LayerNorm(c.v_hidden, eps=c.v_eps)

    def forward(self, pixel_values):
        h = self.embeddings(pixel_values)
        for layer in self.encoder.layers:
            h = layer(h)
        return self.post_layernorm(h)


# ----------------------------------------------------------------------------- text decoder

class TextAttention(nn.Module):
    """BlipTextSelfAttention + BlipTextSelfOutput. Self-attention: `past` holds the keys/values
    of earlier positions ([B, H, P, Dh] each), the new ones are concatenated (DynamicCache).
    Cross-attention: `past` holds the image's keys/values, computed once."""

    def __init__(self, d, kv_dim, heads, eps):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.self = nn.Module()
        self.self.query = nn.Linear(d, d)
        self.self.key = nn.Linear(kv_dim, d)
        self.self.value = nn.Linear(kv_dim, d)
        self.output = nn.Module()
        self.output.dense = nn.Linear(d, d)
        self.output.LayerNorm = nn.LayerNorm(d, eps=eps)

    def split(self, y):  # [B, L, D] -> [B, H, L, Dh]
        return y.reshape(y.shape[0], y.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def kv(self, src):
        return self.split(self.self.key(src)), self.split(self.self.value(src))

    def forward(self, x, past=None, encoder=None, causal=False):
        q = self.split(self.self.query(x))
        if encoder is not None:  # cross-attention: keys/values of the image, once
            k, v = past if past is not None else self.kv(encoder)
        else:
            k, v = self.kv(x)
            if past is not None:
                k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        scores = (q @ k.transpose(-1, -2)) / (self.head_dim ** 0.5)  # [B, H, Lq, Lk]
        lq, lk = q.shape[2], k.shape[2]
        if causal and lq > 1:  # query i sees keys up to i + (lk - lq)
            mask = torch.ones(lq, lk, dtype=torch.bool).tril(diagonal=lk - lq)
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        ctx = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(x.shape)
        return self.output.LayerNorm(self.output.dense(ctx) + x), (k, v)


class TextLayer(nn.Module):  # BlipTextLayer of a decoder
    def __init__(self, c):
        super().__init__()
        self.attention = TextAttention(c.t_hidden, c.t_hidden, c.t_heads, c.t_eps)
        self.crossattention = TextAttention(c.t_hidden, c.encoder_hidden, c.t_heads, c.t_eps)
        self.intermediate = nn.Module()
        self.intermediate.dense = nn.Linear(c.t_hidden, c.t_mlp)
        self.output = nn.Module()
        self.output.dense = nn.Linear(c.t_mlp, c.t_hidden)
        self.output.LayerNorm = nn.LayerNorm(c.t_hidden, eps=c.t_eps)
        self.act = clip_peer._activation(c.t_act)

    def forward(self, x, encoder, past):
        x, self_kv = self.attention(x, past[0] if past else None, causal=True)
        x, cross_kv = self.crossattention(x, past[1] if past else None, encoder=encoder)
        h = self.act(self.intermediate.dense(x))
        return self.output.LayerNorm(self.output.dense(h) + x), (self_kv, cross_kv)


class TextDecoder(nn.Module):  # BlipTextLMHeadModel: bert + cls.predictions
    def __init__(self, c):
        super().__init__()
        self.bert = nn.Module()
        e = self.bert.embeddings = nn.Module()
        e.word_embeddings = nn.Embedding(c.vocab, c.t_hidden)
        e.position_embeddings = nn.Embedding(c.max_positions, c.t_hidden)
        e.LayerNorm = nn.LayerNorm(c.t_hidden, eps=c.t_eps)
        self.bert.encoder = nn.Module()
        self.bert.encoder.layer = nn.ModuleList([TextLayer(c) for _ in range(c.t_layers)])
        p = nn.Module()
        p.transform = nn.Module()
        p.transform.dense = nn.Linear(c.t_hidden, c.t_hidden)
        p.transform.LayerNorm = nn.LayerNorm(c.t_hidden, eps=c.t_eps)
        p.decoder = nn.Linear(c.t_hidden, c.vocab)  # bias = cls.predictions.bias
        self.cls = nn.Module()
        self.cls.predictions = p
        self.act = clip_peer._activation(c.t_act)

    def forward(self, ids, encoder, past=None):
        """ids [B, L] at positions len(past).. -> logits [B, L, V], the new cache."""
        start = 0 if past is None else past[0][0][0].shape[2]
        e = self.bert.embeddings
        pos = torch.arange(start, start + ids.shape[1])
        h = e.LayerNorm(e.word_embeddings(ids) + e.position_embeddings(pos)[None])
        cache = []
        for i, layer in enumerate(self.bert.encoder.layer):
            h, kv = layer(h, encoder, past[i] if past is not None else None)
            cache.append(kv)
        p = self.cls.predictions
        return p.decoder(p.transform.LayerNorm(self.act(p.transform.dense(h)))), cache


class BlipCaptioner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.vision_model = VisionModel(c)
        self.text_decoder = TextDecoder(c)

    def load_hf(self, model_dir):
        path = os.path.join(model_dir, "model.safetensors")
        tensors = st_io.load(path)
        state = {}
        for name, own in self.state_dict().items():
            hf = name
            if name == "text_decoder.cls.predictions.decoder.weight" and hf not in tensors:
                hf = "text_decoder.bert.embeddings.word_embeddings.weight"  # tied (save_pretrained)
            elif name == "text_decoder.cls.predictions.decoder.bias" and hf not in tensors:
                hf = "text_decoder.cls.predictions.bias"
            if hf not in tensors:
                raise KeyError(f"{path}: missing tensor '{hf}'")
            t = torch.from_numpy(np.array(tensors[hf], dtype=np.float32))
            if tuple(t.shape) != tuple(own.shape):
                raise ValueError(f"{path}: '{hf}' has shape {list(t.shape)}, the config wants {list(own.shape)}")
            state[name] = t
        self.load_state_dict(state)
        return self

    def encode(self, pixel_values):  # [1, 3, S, S] -> image_embeds [1, T, Dv]
        return self.vision_model(pixel_values)

    def greedy(self, image_embeds, prompt, new_tokens, step_logits=None):
        """prompt + new_tokens greedy tokens; no EOS stop (BlipForConditionalGeneration.generate
        with min_new_tokens = max_new_tokens); step_logits (a list) receives each step's [V]."""
        ids = list(prompt)
        logits, cache = self.text_decoder(torch.tensor([ids]), image_embeds)
        for step in range(new_tokens):
            last = logits[0, -1]
            if step_logits is not None:
                step_logits.append(last.clone())
            nxt = int(torch.argmax(last))
            ids.append(nxt)
            if step + 1 < new_tokens:
                logits, cache = self.text_decoder(torch.tensor([[nxt]]), image_embeds, cache)
        return ids


def build(model_dir):
    c = BlipConfig(model_dir)
    return BlipCaptioner(c).load_hf(model_dir).eval(), c


# ----------------------------------------------------------------------------- modes

def bench_pixels(size, k):
    """Image k as `lumen bench blip` makes it: ((i * 7919 + k * 104729) mod 2001) / 1000 - 1."""
    i = np.arange(3 * size * size, dtype=np.int64)
    x = ((i * 7919 + k * 104729) % 2001).astype(np.float32) / np.float32(1000) - np.float32(1)
    return torch.from_numpy(x.reshape(1, 3, size, size))


def report(name, have, want, tol):
    want = np.asarray(want)
    have = np.asarray(have)
    if want.shape != have.shape:
        print(f"FAIL {name}: shape {list(have.shape)} vs expected {list(want.shape)}")
        return False
    diff = float(np.max(np.abs(want.astype(np.float64) - have.astype(np.float64)))) if want.size else 0.0
    ok = diff <= tol
    print(f"{'ok  ' if ok else 'FAIL'} {name} {list(want.shape)} max_abs_diff={diff:.3g} (tol {tol:g})")
    return ok


def verify_fixture(model, c, case_dir, tol):
    inputs = st_io.load(os.path.join(case_dir, "inputs.safetensors"))
    expected = st_io.load(os.path.join(case_dir, "expected.safetensors"))
    pixels = torch.from_numpy(np.array(inputs["pixel_values"], dtype=np.float32))
    ids = np.array(inputs["input_ids"], dtype=np.int64)
    ok = True
    with torch.inference_mode():
        image = model.encode(pixels)
        if "logits" in expected:  # caption_forward: the decoder over input_ids as given
            logits, _ = model.text_decoder(torch.from_numpy(ids), image)
            ok &= report("logits", logits.numpy(), expected["logits"], tol)
            if "image_embeds" in expected:
                ok &= report("image_embeds", image.numpy(), expected["image_embeds"], tol)
        if "new_token_ids" in expected:  # greedy_generate: [bos] + input_ids[0, 1:-1], then greedy
            prompt = [c.bos] + [int(x) for x in ids[0, 1:-1]]
            want_new = np.asarray(expected["new_token_ids"])
            steps = []
            seq = model.greedy(image, prompt, want_new.shape[1], steps)
            got_new = np.array([seq[len(prompt):]], dtype=np.int64)
            same = got_new.shape == want_new.shape and bool((got_new == want_new).all())
            print(f"{'ok  ' if same else 'FAIL'} new_token_ids {got_new.tolist()} vs {want_new.tolist()}")
            ok &= same
            if "sequences" in expected:
                ok &= report("sequences", np.array([seq]), expected["sequences"], 0)
            if "step_logits" in expected:
                ok &= report("step_logits", torch.stack(steps)[None].numpy(), expected["step_logits"], tol)
        if "logits" not in expected and "new_token_ids" not in expected:
            print(f"FAIL {case_dir}: neither logits (caption_forward) nor new_token_ids (greedy_generate) expected")
            ok = False
    return ok


def bench(model, c, threads, images, warmup, new_tokens):
    prompt = [c.bos]  # generate() without text: [DEC]
    with torch.inference_mode():
        for k in range(warmup):
            model.greedy(model.encode(bench_pixels(c.image, 1000 + k)), prompt, new_tokens)
        encode_s = decode_s = encode_cpu = decode_cpu = 0.0
        first = None
        for k in range(images):
            pixels = bench_pixels(c.image, k)  # not timed (lumen makes its pixels outside the timer too)
            t0, c0 = time.perf_counter(), time.process_time()
            image = model.encode(pixels)
            t1, c1 = time.perf_counter(), time.process_time()
            ids = model.greedy(image, prompt, new_tokens)
            t2, c2 = time.perf_counter(), time.process_time()
            encode_s += t1 - t0
            decode_s += t2 - t1
            # CPU time of all threads: on a busy machine it shows the work done
            encode_cpu += c1 - c0
            decode_cpu += c2 - c1
            if first is None:
                first = ids
    total, cpu = encode_s + decode_s, encode_cpu + decode_cpu
    return {"peer": "pytorch", "captions_per_s": round(images / total, 5), "s_per_caption": round(total / images, 5),
            "encode_s": round(encode_s / images, 5), "decode_s": round(decode_s / images, 5),
            "decode_tokens_per_s": round(new_tokens * images / decode_s, 3),
            "cpu_s_per_caption": round(cpu / images, 5), "encode_cpu_s": round(encode_cpu / images, 5),
            "decode_cpu_s": round(decode_cpu / images, 5), "threads": threads, "new_tokens": new_tokens,
            "images": images, "warmup": warmup, "image_size": c.image, "first_caption_ids": first,
            "version": torch.__version__, "openblas": clip_peer._openblas_core()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF BLIP captioning checkpoint dir (config.json + model.safetensors)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--verify-fixture", metavar="CASE_DIR")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--bench", action="store_true", help="benchmark (the default without --verify-fixture)")
    args = ap.parse_args()
    if args.threads < 1 or args.images < 1 or args.warmup < 0 or args.max_new_tokens < 1:
        ap.error("--threads, --images and --max-new-tokens must be >= 1, --warmup >= 0")
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    try:
        model, c = build(args.model)
    except (OSError, KeyError, ValueError) as e:
        print(json.dumps({"peer": "pytorch", "error": str(e)}), flush=True)
        return 1
    status = 0
    if args.verify_fixture and not verify_fixture(model, c, args.verify_fixture, args.tol):
        status = 1
    if args.bench or not args.verify_fixture:
        print(json.dumps(bench(model, c, args.threads, args.images, args.warmup, args.max_new_tokens)), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
