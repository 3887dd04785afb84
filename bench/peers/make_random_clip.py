#!/usr/bin/python3
"""Writes a random-weight CLIP image-encoder checkpoint in the Hugging Face layout.

  /usr/bin/python3 make_random_clip.py --arch vit-b-32 --out /tmp/lumen-peers/clip-vit-b-32

OUT/config.json        CLIPModel-style config (vision_config + top-level projection_dim)
OUT/model.safetensors  vision_model.* and visual_projection.weight, named as CLIPModel saves them
                       (no text tower: the benchmark encodes images only)
OUT/preprocessor_config.json  the usual CLIP image processor settings for this image size

Weights follow the fixture generator's scheme (shared/fixtures/FORMAT.md): norm weights
1 + 0.1*N(0,1), norm biases 0.1*N(0,1), other biases 0.05*N(0,1), matrices N(0,1)/sqrt(fan_in)
(fan_in: product of all dims after the first), other vectors N(0,1)/sqrt(numel). That keeps
activations in a realistic range through all layers, unlike zeros or unscaled noise.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

ARCHS = {
    # name: hidden, layers, heads, mlp, patch, image, projection
    "vit-b-32": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, patch_size=32, image_size=224, projection_dim=512),
    "vit-b-16": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=3072, patch_size=16, image_size=224, projection_dim=512),
    "vit-l-14": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                     intermediate_size=4096, patch_size=14, image_size=224, projection_dim=768),
    "vit-l-14-336": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                         intermediate_size=4096, patch_size=14, image_size=336, projection_dim=768),
    # Seconds-fast smoke test of the scripts themselves.
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, patch_size=8, image_size=32, projection_dim=32),
}


def tensor_specs(a):
    """[(hf_name, shape, kind)] with kind in norm_w, norm_b, bias, matrix, vector."""
    d, m, p, s, c = (a["hidden_size"], a["intermediate_size"], a["patch_size"], a["image_size"], 3)
    positions = (s // p) ** 2 + 1
    v = "vision_model."
    specs = [
        (v + "embeddings.class_embedding", (d,), "vector"),
        (v + "embeddings.patch_embedding.weight", (d, c, p, p), "matrix"),
        (v + "embeddings.position_embedding.weight", (positions, d), "matrix"),
        (v + "pre_layrnorm.weight", (d,), "norm_w"),
        (v + "pre_layrnorm.bias", (d,), "norm_b"),
        (v + "post_layernorm.weight", (d,), "norm_w"),
        (v + "post_layernorm.bias", (d,), "norm_b"),
        ("visual_projection.weight", (a["projection_dim"], d), "matrix"),
    ]
    for i in range(a["num_hidden_layers"]):
        L = f"{v}encoder.layers.{i}."
        for ln in ("layer_norm1", "layer_norm2"):
            specs += [(L + ln + ".weight", (d,), "norm_w"), (L + ln + ".bias", (d,), "norm_b")]
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += [(L + f"self_attn.{proj}.weight", (d, d), "matrix"),
                      (L + f"self_attn.{proj}.bias", (d,), "bias")]
        specs += [(L + "mlp.fc1.weight", (m, d), "matrix"), (L + "mlp.fc1.bias", (m,), "bias"),
                  (L + "mlp.fc2.weight", (d, m), "matrix"), (L + "mlp.fc2.bias", (d,), "bias")]
    return specs


def maker(rng, shape, kind):
    def make():
        x = rng.standard_normal(shape, dtype=np.float32)
        if kind == "norm_w":
            return 1.0 + 0.1 * x
        if kind == "norm_b":
            return 0.1 * x
        if kind == "bias":
            return 0.05 * x
        if kind == "matrix":
            return x / np.float32(np.sqrt(np.prod(shape[1:])))
        return x / np.float32(np.sqrt(np.prod(shape)))
    return make


def write(out_dir, arch, seed):
    a = ARCHS[arch]
    os.makedirs(out_dir, exist_ok=True)
    vision_config = dict(a, model_type="clip_vision_model", hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, num_channels=3, attention_dropout=0.0,
                         initializer_factor=1.0, initializer_range=0.02)
    config = {"architectures": ["CLIPModel"], "model_type": "clip", "dtype": "float32",
              "projection_dim": a["projection_dim"], "logit_scale_init_value": 2.6592,
              "initializer_factor": 1.0, "vision_config": vision_config}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    preprocessor = {"image_processor_type": "CLIPImageProcessor", "do_resize": True,
                    "size": {"shortest_edge": a["image_size"]}, "resample": 3,
                    "do_center_crop": True,
                    "crop_size": {"height": a["image_size"], "width": a["image_size"]},
                    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                    "image_mean": [0.48145466, 0.4578275, 0.40821073],
                    "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True}
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor, f, indent=2)
        f.write("\n")
    # One generator per tensor, keyed by (seed, spec index): the same seed gives the same weights
    # whatever order the writer materializes them in.
    specs = tensor_specs(a)
    entries = [(name, np.float32, shape, maker(np.random.default_rng([seed, i]), shape, kind))
               for i, (name, shape, kind) in enumerate(specs)]
    st_io.save_lazy(os.path.join(out_dir, "model.safetensors"), entries, metadata={"format": "pt"})
    return sum(int(np.prod(s)) for _, s, _ in specs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--out", required=True, help="output directory (keep it out of the repo tree)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = write(args.out, args.arch, args.seed)
    print(f"wrote {args.out} ({args.arch}, {n / 1e6:.1f}M parameters)", file=sys.stderr)


if __name__ == "__main__":
    main()
