#!/usr/bin/python3
"""Pure-PyTorch CLIP image encoder: the PyTorch peer of `lumen bench clip`.

HF transformers is not installable here, so this re-implements CLIPVisionModel + visual_projection
(the part of CLIPModel that maps pixel_values [B,3,S,S] to image_embeds [B,P]) op for op, reading a
Hugging Face checkpoint directory (config.json + model.safetensors) with HF's tensor names.

Run it with Debian's /usr/bin/python3 (python3-torch, python3-numpy), not the pyenv python3.

Modes (any combination; with none of the first four it benchmarks):
  --verify-fixture CASE_DIR   compare with a golden clip_forward case (inputs/expected.safetensors)
  --export-onnx OUT.onnx      export pixel_values -> image_embeds (opset 17, dynamic batch axis)
  --dump-embeds OUT.npy       run a seeded N(0,1) input of --batch images; write OUT.npy (image_embeds)
                              and OUT-stem.pixel_values.npy; OUT.safetensors puts both (and the
                              unnormalized image_features) in one file instead
  --bench                     time --iters batches after --warmup, print one JSON line
"""
import argparse
import inspect
import json
import os
import sys
import time


def _configure_blas(argv):
    """Debian's torch does its GEMMs in OpenBLAS (pthreads build), which reads two settings from
    the environment when it loads, so they must be set before numpy/torch are imported:
    - its pool size, which torch.set_num_threads does not govern: pinned to --threads, or a
      1-thread run would quietly use every core;
    - its kernel: OpenBLAS 0.3.21 does not know recent Xeons (e.g. family 6 model 207) and falls
      back to SSE3 'Prescott' kernels, ~5x slower than AVX-512 ones. An OPENBLAS_CORETYPE that is
      already set is left alone; otherwise pick the newest kernel family the CPU flags allow.
    Also, torch's OpenMP pool (elementwise ops) and OpenBLAS's own pthreads (GEMMs) take turns;
    OpenMP workers that spin between regions steal the cores OpenBLAS needs (measured on a busy
    2-core machine: 2 threads ran ViT-B/32 7x slower than 1), so unless told otherwise
    (OMP_WAIT_POLICY already set) they sleep when idle."""
    threads = "1"  # the --threads default
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            threads = argv[i + 1]
        elif a.startswith("--threads="):
            threads = a.split("=", 1)[1]
    if threads.isdigit() and int(threads) > 0:
        os.environ["OPENBLAS_NUM_THREADS"] = threads
        os.environ["OMP_NUM_THREADS"] = threads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not os.environ.get("OPENBLAS_CORETYPE"):
        try:
            with open("/proc/cpuinfo") as f:
                flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        except OSError:
            flags = []
        if "avx512f" in flags and "avx512bw" in flags:
            os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
        elif "avx2" in flags and "fma" in flags:
            os.environ["OPENBLAS_CORETYPE"] = "Haswell"


_configure_blas(sys.argv[1:])

import numpy as np  # noqa: E402  (after the thread pinning above)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402


# ----------------------------------------------------------------------------- config + weights

class VisionConfig:
    def __init__(self, model_dir):
        path = os.path.join(model_dir, "config.json")
        with open(path) as f:
            cfg = json.load(f)
        # CLIPModel nests the tower under vision_config; CLIPVisionModel(WithProjection) is flat.
        vc = cfg.get("vision_config", cfg)

        def need(key, src=vc):
            if key not in src:
                raise KeyError(f"{path}: vision config has no '{key}'")
            return src[key]

        self.hidden = int(need("hidden_size"))
        self.intermediate = int(need("intermediate_size"))
        self.layers = int(need("num_hidden_layers"))
        self.heads = int(need("num_attention_heads"))
        self.patch = int(need("patch_size"))
        self.image = int(need("image_size"))
        self.channels = int(vc.get("num_channels", 3))
        self.act = vc.get("hidden_act", "quick_gelu")
        self.eps = float(vc.get("layer_norm_eps", 1e-5))
        proj = cfg.get("projection_dim", vc.get("projection_dim"))
        if proj is None:
            raise KeyError(f"{path}: no projection_dim (top level or vision_config)")
        self.projection = int(proj)
        if self.hidden % self.heads:
            raise ValueError(f"{path}: hidden_size {self.hidden} not divisible by heads {self.heads}")
        if self.image % self.patch:
            raise ValueError(f"{path}: image_size {self.image} not divisible by patch {self.patch}")
        self.positions = (self.image // self.patch) ** 2 + 1


def load_weights(model_dir):
    path = os.path.join(model_dir, "model.safetensors")
    tensors = st_io.load(path)
    # CLIPModel / CLIPVisionModelWithProjection save the tower under "vision_model."; some recent
    # CLIPVisionModel sources hold embeddings/encoder directly. Accept what the file has.
    if any(k.startswith("vision_model.") for k in tensors):
        prefix = "vision_model."
    elif any(k.startswith("embeddings.patch_embedding") for k in tensors):
        prefix = ""
    else:
        raise KeyError(f"{path}: no vision tower tensors (vision_model.embeddings.*)")
    return tensors, prefix, path


# ----------------------------------------------------------------------------- model

def _activation(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: F.gelu(x)
    if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "relu":
        return F.relu
    raise ValueError(f"unsupported hidden_act '{name}'")


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.heads
        self.head_dim = c.hidden // c.heads
        self.scale = self.head_dim ** -0.5
        self.q_proj = nn.Linear(c.hidden, c.hidden)
        self.k_proj = nn.Linear(c.hidden, c.hidden)
        self.v_proj = nn.Linear(c.hidden, c.hidden)
        self.out_proj = nn.Linear(c.hidden, c.hidden)

    def forward(self, x):  # x: [B, T, D]
        b, t, d = x.shape[0], x.shape[1], x.shape[2]

        def split(y):  # [B, T, D] -> [B, H, T, Dh]
            return y.reshape(b, t, self.heads, self.head_dim).transpose(1, 2)

        q = split(self.q_proj(x) * self.scale)
        k = split(self.k_proj(x))
        v = split(self.v_proj(x))
        probs = torch.softmax(q @ k.transpose(-1, -2), dim=-1)  # [B, H, T, T], no mask for images
        out = (probs @ v).transpose(1, 2).reshape(b, t, d)
        return self.out_proj(out)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c.hidden, c.intermediate)
        self.fc2 = nn.Linear(c.intermediate, c.hidden)
        self.act = _activation(c.act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):  # pre-LN residual block
    def __init__(self, c):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.self_attn = Attention(c)
        self.layer_norm2 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.empty(c.hidden))
        self.patch_embedding = nn.Conv2d(c.channels, c.hidden, c.patch, stride=c.patch, bias=False)
        self.position_embedding = nn.Embedding(c.positions, c.hidden)

    def forward(self, pixel_values):  # [B, C, S, S] -> [B, 1+N, D]
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)  # [B, N, D]
        cls = self.class_embedding.reshape(1, 1, -1).expand(patches.shape[0], 1, -1)
        return torch.cat([cls, patches], dim=1) + self.position_embedding.weight


class VisionTower(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.pre_layrnorm = nn.LayerNorm(c.hidden, eps=c.eps)  # sic: HF's spelling
        self.layers = nn.ModuleList([EncoderLayer(c) for _ in range(c.layers)])
        self.post_layernorm = nn.LayerNorm(c.hidden, eps=c.eps)


class ClipImageEncoder(nn.Module):
    """pixel_values [B,3,S,S] -> image_embeds [B,P] (L2-normalized, as CLIPModel's image_embeds)."""

    def __init__(self, c):
        super().__init__()
        self.vision = VisionTower(c)
        self.visual_projection = nn.Linear(c.hidden, c.projection, bias=False)

    def forward_all(self, pixel_values):
        v = self.vision
        h = v.pre_layrnorm(v.embeddings(pixel_values))
        for layer in v.layers:
            h = layer(h)
        last_hidden_state = h                        # [B, 1+N, D], no post-LN (as HF)
        pooled = v.post_layernorm(h[:, 0, :])        # [B, D]
        features = self.visual_projection(pooled)    # [B, P], get_image_features()
        embeds = features / features.norm(p=2, dim=-1, keepdim=True)
        return {"last_hidden_state": last_hidden_state, "pooled": pooled,
                "image_features": features, "image_embeds": embeds}

    def forward(self, pixel_values):
        return self.forward_all(pixel_values)["image_embeds"]

    def load_hf(self, tensors, prefix, path):
        """Copies HF-named tensors in; every parameter must be present with the right shape."""
        state = {}
        for name in self.state_dict():
            if name.startswith("vision.layers."):
                hf = prefix + "encoder." + name[len("vision."):]
            elif name.startswith("vision."):
                hf = prefix + name[len("vision."):]
            else:
                hf = name  # visual_projection.weight sits at the top level in HF checkpoints
            if hf not in tensors:
                raise KeyError(f"{path}: missing tensor '{hf}'")
            state[name] = torch.from_numpy(np.array(tensors[hf], dtype=np.float32))
        own = self.state_dict()
        for name, t in state.items():
            if tuple(t.shape) != tuple(own[name].shape):
                raise ValueError(f"{path}: tensor shape {list(t.shape)} does not match the config's "
                                 f"{list(own[name].shape)} for '{name}'")
        self.load_state_dict(state)
        return self


def build(model_dir):
    c = VisionConfig(model_dir)
    tensors, prefix, path = load_weights(model_dir)
    model = ClipImageEncoder(c).load_hf(tensors, prefix, path).eval()
    return model, c


# ----------------------------------------------------------------------------- modes

def seeded_pixels(seed, batch, c):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, c.channels, c.image, c.image), dtype=np.float32)


def verify_fixture(model, case_dir, tol):
    inputs = st_io.load(os.path.join(case_dir, "inputs.safetensors"))
    expected = st_io.load(os.path.join(case_dir, "expected.safetensors"))
    with torch.inference_mode():
        got = model.forward_all(torch.from_numpy(np.array(inputs["pixel_values"])))
    checks = [("image_embeds", got["image_embeds"]),
              ("vision_last_hidden_state", got["last_hidden_state"])]
    if "vision_pooler_output" in expected:
        # Depending on the generating transformers version this is post_layernorm(CLS) [B,Hv]
        # or already projected [B,P]; compare with whichever our outputs match in shape.
        pooler_shape = tuple(expected["vision_pooler_output"].shape)
        for key in ("pooled", "image_features"):
            if tuple(got[key].shape) == pooler_shape:
                checks.append(("vision_pooler_output", got[key]))
                break
    ok = True
    for name, tensor in checks:
        want = np.asarray(expected[name])
        have = tensor.numpy()
        if want.shape != have.shape:
            print(f"FAIL {name}: shape {list(have.shape)} vs expected {list(want.shape)}")
            ok = False
            continue
        diff = float(np.max(np.abs(want - have)))
        status = "ok  " if diff <= tol else "FAIL"
        ok &= diff <= tol
        print(f"{status} {name} {list(want.shape)} max_abs_diff={diff:.3g} (tol {tol:g})")
    return ok


def export_onnx(model, c, out_path, batch):
    example = torch.zeros(batch, c.channels, c.image, c.image)
    kwargs = dict(input_names=["pixel_values"], output_names=["image_embeds"],
                  dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                  opset_version=17, do_constant_folding=True)
    # Newer torch defaults to the dynamo exporter (needs onnxscript); keep the TorchScript one.
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    tmp = out_path + ".tmp"
    with torch.inference_mode():
        torch.onnx.export(model, (example,), tmp, **kwargs)
    os.replace(tmp, out_path)  # readers (cache checks) never see a half-written file


def dump_embeds(model, c, out_path, batch, seed):
    pixels = seeded_pixels(seed, batch, c)
    with torch.inference_mode():
        got = model.forward_all(torch.from_numpy(pixels))
    if out_path.endswith(".safetensors"):
        st_io.save(out_path, {"pixel_values": pixels,
                              "image_embeds": got["image_embeds"].numpy(),
                              "image_features": got["image_features"].numpy()},
                   metadata={"seed": seed, "input": "standard_normal float32 (numpy PCG64)"})
        return [out_path]
    stem = out_path[:-4] if out_path.endswith(".npy") else out_path
    pix_path = stem + ".pixel_values.npy"
    np.save(out_path if out_path.endswith(".npy") else out_path + ".npy", got["image_embeds"].numpy())
    np.save(pix_path, pixels)
    return [stem + ".npy", pix_path]


def _openblas_core():
    """OpenBLAS's kernel name (e.g. 'SkylakeX'), or None where torch does not use OpenBLAS."""
    import ctypes
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None


def bench(model, c, batch, threads, iters, warmup, seed):
    pixels = torch.from_numpy(seeded_pixels(seed, batch, c))
    with torch.inference_mode():
        for _ in range(warmup):
            model(pixels)
        times = []
        cpu0 = time.process_time()
        for _ in range(iters):
            t0 = time.perf_counter()
            model(pixels)
            times.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0  # all threads; on a busy machine it shows the work done
    total = sum(times)
    ips = batch * iters / total
    return {"peer": "pytorch", "images_per_s": round(ips, 4), "ms_per_image": round(1000.0 / ips, 3),
            "cpu_ms_per_image": round(1000.0 * cpu / (batch * iters), 3),
            "batch": batch, "threads": threads, "iters": iters, "warmup": warmup,
            "ms_per_batch_min": round(1000.0 * min(times), 3),
            "ms_per_batch_median": round(1000.0 * sorted(times)[len(times) // 2], 3),
            "version": torch.__version__, "openblas": _openblas_core()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="HF CLIP checkpoint dir (config.json + model.safetensors)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify-fixture", metavar="CASE_DIR")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--export-onnx", metavar="OUT.onnx")
    ap.add_argument("--dump-embeds", metavar="OUT.npy")
    ap.add_argument("--bench", action="store_true", help="benchmark even when another mode is given")
    args = ap.parse_args()
    if args.batch < 1 or args.threads < 1 or args.iters < 1 or args.warmup < 0:
        ap.error("--batch, --threads and --iters must be >= 1, --warmup >= 0")

    # Intra-op threads as asked; one inter-op thread (a single sequential graph), like the ORT peer.
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    try:
        model, c = build(args.model)
    except (OSError, KeyError, ValueError) as e:
        sys.exit(f"clip_vision_torch: {e}")

    status = 0
    if args.verify_fixture:
        if not verify_fixture(model, args.verify_fixture, args.tol):
            status = 1
    if args.export_onnx:
        export_onnx(model, c, args.export_onnx, args.batch)
        print(f"wrote {args.export_onnx}", file=sys.stderr)
    if args.dump_embeds:
        for p in dump_embeds(model, c, args.dump_embeds, args.batch, args.seed):
            print(f"wrote {p}", file=sys.stderr)
    if args.bench or not (args.verify_fixture or args.export_onnx or args.dump_embeds):
        print(json.dumps(bench(model, c, args.batch, args.threads, args.iters, args.warmup, args.seed)),
              flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
