#!/usr/bin/env python3
"""Builds tests/data/preprocess/ for tests/vision_test.cpp. Not needed at test time.

    /usr/bin/python3 scripts/make_vision_test_data.py /work/shared/fixtures/public tests/data/preprocess

Needs numpy and PIL (Debian's python3-numpy / python3-pil are enough).

What it writes (all U8 arrays are [H, W, 3]):
  images/                  the fixture source images, copied
  <proc>/preprocessor_config.json   the fixture's preprocessor_config_slow.json
  <proc>/expected_u8.st.gz  per image stem: the uint8 image just before rescale+normalize,
                            recovered from the fixture's float pixel_values_slow by inverting
                            normalize and rescale; the script checks that re-normalizing it
                            reproduces the fixture floats exactly (numpy's op order).
                            LLaVA-NeXT (ANYRES): "<stem>/tile<i>" per tile (0 = the base image)
                            and "<stem>/image_sizes" = the fixture's image_sizes_slow [1, 2];
                            to stay near 1 MB, the stems outside ANYRES_FULL store only
                            "<stem>/tile<i>.crc32" = [crc32, H, W] of each uint8 tile.
  llava_next_forward/       the llava_next_forward case's preprocessor_config.json, its
                            pixel_values as uint8 tiles ("tile<i>"), image_sizes, and meta.json
                            (the case meta). The case's source image is not in the fixtures.

    /usr/bin/python3 scripts/make_vision_test_data.py FIXTURES OUT llava_next
rebuilds only the LLaVA-NeXT parts.
  decoded_rgb.st.gz        the fixture's decoded_rgb arrays for the small or non-trivial images
                            (JPEG, RGBA, L, 37x53); for the large RGB PNGs only "<stem>.crc32"
                            = [crc32, H, W] of the fixture array (their pixels are the PNG itself).
  extra/                   cases the fixtures lack, referenced by local PIL (see make_extra):
                            EXIF/XMP orientation, PNG bit depths and colour types, WebP,
                            alpha compositing, every resize filter, center-crop padding.
  extra/expected.st.gz     their reference arrays.

*.st.gz is a gzip-compressed safetensors file whose U8 tensors are stored "delta2d" filtered
(d[y,x] = a[y,x] - a[y-1,x] - a[y,x-1] + a[y-1,x-1] mod 256, zero outside), which makes smooth
images compress ~2x better; the test undoes it with a 2-D prefix sum.
"""
import gzip
import io
import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

PROCESSORS = ["clip_224", "clip_336", "siglip_224", "blip_384"]
ANYRES = ["llava_next_336"]
ANYRES_FULL = {"grad_37x53", "grad_1000x200"}  # a tall and a wide image; the others as CRCs
UNSUPPORTED = ["pix2struct_256"]
FULL_DECODED = {"photo_640x427", "rgba_96x64", "gray_80x120", "grad_37x53"}


def load_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    data = b[8 + n :]
    kinds = {"U8": np.uint8, "F32": np.float32, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        out[k] = np.frombuffer(data[lo:hi], kinds[v["dtype"]]).reshape(v["shape"])
    return out


def delta2d(a):
    a = a.astype(np.int32)
    d = a.copy()
    d[1:] -= a[:-1]
    d[:, 1:] -= a[:, :-1]
    d[1:, 1:] += a[:-1, :-1]
    return (d % 256).astype(np.uint8)


def undelta2d(d):
    return (np.cumsum(np.cumsum(d.astype(np.int64), axis=0), axis=1) % 256).astype(np.uint8)


def write_st_gz(path, tensors, metadata=None):
    """tensors: name -> uint8 array (delta2d-filtered here) or int64 array (stored as is)."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype == np.uint8:
            assert np.array_equal(undelta2d(delta2d(a)), a)
            raw, dtype = delta2d(a).tobytes(), "U8"
        else:
            raw, dtype = a.astype("<i8").tobytes(), "I64"
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    meta = {"filter": "delta2d"}
    meta.update(metadata or {})
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    body = struct.pack("<Q", len(h)) + h + b"".join(blobs)
    with open(path, "wb") as f:
        f.write(gzip.compress(body, 9, mtime=0))


def invert_to_u8(x, cfg):
    """pixel_values_slow [3,H,W] -> the uint8 image [H,W,3] it was normalized from."""
    mean = np.array(cfg["image_mean"], np.float32)[:, None, None]
    std = np.array(cfg["image_std"], np.float32)[:, None, None]
    rf = cfg["rescale_factor"]
    u = np.rint((x.astype(np.float64) * std + mean) / rf)
    assert u.min() >= 0 and u.max() <= 255
    u = u.astype(np.uint8)
    # transformers.image_transforms: rescale = (u8 as float64 * factor) -> float32, then
    # normalize = (x - mean32) / std32 in float32.
    again = ((u.astype(np.float64) * rf).astype(np.float32) - mean) / std
    err = float(np.abs(again - x).max())
    assert err <= 1e-5, err
    return u.transpose(1, 2, 0), err


# ---------------------------------------------------------------- PNG writer for odd types
def png_bytes(width, height, bit_depth, color_type, rows, plte=None, trns=None, interlace=False, extra=()):
    """rows: list of raw scanline bytes (no filter byte), or for interlace the full image array."""

    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, int(interlace)))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    for t, d in extra:
        out += chunk(t, d)
    raw = b"".join(b"\x00" + r for r in rows)
    out += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return out


def pack_bits(values, bit_depth):
    """Packs one row of integer samples into bytes (MSB first), 16-bit big-endian."""
    if bit_depth == 16:
        return np.asarray(values, ">u2").tobytes()
    if bit_depth == 8:
        return np.asarray(values, np.uint8).tobytes()
    per = 8 // bit_depth
    v = list(values) + [0] * (-len(values) % per)
    out = bytearray()
    for i in range(0, len(v), per):
        b = 0
        for j in range(per):
            b = (b << bit_depth) | int(v[i + j])
        out.append(b)
    return bytes(out)


def pil_rgb(data):
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def pil_composite(data):
    im = Image.open(io.BytesIO(data)).convert("RGBA")
    white = Image.new("RGBA", im.size, (255, 255, 255))
    return np.array(Image.alpha_composite(white, im).convert("RGB"))


def exif_blob(orientation, big_endian=False):
    e = Image.Exif()
    e[0x0112] = orientation
    b = e.tobytes()
    if big_endian:  # hand-made Motorola-order IFD0 with one SHORT entry
        b = b"Exif\x00\x00MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1)
        b += struct.pack(">HHI", 0x0112, 3, 1) + struct.pack(">H", orientation) + b"\x00\x00" + struct.pack(">I", 0)
    return b


TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def make_extra(out_dir, images_dir):
    """Small images the fixtures do not cover; references come from PIL on this machine
    (its libjpeg-turbo/libpng/libwebp are the ones lumen links, and Resample.c's 8-bit path
    is unchanged between PIL 9 and 12). Each case: a file under extra/ and a reference array."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240611)
    ref = {}
    files = {}

    yy, xx = np.mgrid[0:7, 0:13]
    base = np.stack([xx * 19, yy * 36, (xx * yy * 3) % 256], -1).astype(np.uint8)  # 13x7, distinct

    # EXIF orientation in JPEG APP1 (Intel order via PIL, and one Motorola-order blob).
    for o in range(1, 9):
        b = io.BytesIO()
        Image.fromarray(base).save(b, "JPEG", quality=95, exif=exif_blob(o))
        files[f"orient_{o}.jpg"] = b.getvalue()
        ref[f"orient_{o}"] = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(b.getvalue()))).convert("RGB"))
    b = io.BytesIO()
    Image.fromarray(base).save(b, "JPEG", quality=95, exif=exif_blob(6, big_endian=True))
    files["orient_6_motorola.jpg"] = b.getvalue()
    ref["orient_6_motorola"] = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(b.getvalue()))).convert("RGB"))
    assert ref["orient_6_motorola"].shape[:2] == (13, 7)

    # XMP-only orientation in JPEG: Pillow >= 10 reads `tiff:Orientation` from the JPEG XMP
    # packet (older PIL only from PNG), so the reference is PIL's own transpose of the decode.
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    b = io.BytesIO()
    Image.fromarray(base).save(b, "JPEG", quality=95)
    jpg = b.getvalue()
    app1 = b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    jpg = jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]
    files["orient_xmp_8.jpg"] = jpg
    ref["orient_xmp_8"] = np.array(Image.open(io.BytesIO(jpg)).convert("RGB").transpose(TRANSPOSE[8]))

    # PNG eXIf and PNG iTXt XMP orientation.
    b = io.BytesIO()
    Image.fromarray(base).save(b, "PNG", exif=exif_blob(6))
    files["orient_6.png"] = b.getvalue()
    ref["orient_6_png"] = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(b.getvalue()))).convert("RGB"))
    itxt = b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + b"<x><tiff:Orientation>3</tiff:Orientation></x>"
    rows = [base[y].tobytes() for y in range(7)]
    data = png_bytes(13, 7, 8, 2, rows, extra=[(b"iTXt", itxt)])
    files["orient_xmp_3.png"] = data
    ref["orient_xmp_3_png"] = np.array(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(ref["orient_xmp_3_png"], base[::-1, ::-1])

    # PNG colour types and bit depths (written by hand, decoded by PIL).
    w, h = 11, 6
    g = rng.integers(0, 256, (h, w))
    for bd in (1, 2, 4, 8):
        vals = g % (1 << bd)
        files[f"gray{bd}.png"] = png_bytes(w, h, bd, 0, [pack_bits(r, bd) for r in vals])
    g16 = rng.integers(0, 700, (h, w))  # crosses 255: PIL's I;16 -> RGB clips
    g16[0, :4] = [0, 255, 256, 65535]
    files["gray16.png"] = png_bytes(w, h, 16, 0, [pack_bits(r, 16) for r in g16])
    la = rng.integers(0, 256, (h, w, 2))
    files["gray_alpha8.png"] = png_bytes(w, h, 8, 4, [r.astype(np.uint8).tobytes() for r in la])
    la16 = rng.integers(0, 65536, (h, w, 2))
    files["gray_alpha16.png"] = png_bytes(w, h, 16, 4, [pack_bits(r.reshape(-1), 16) for r in la16])
    rgb16 = rng.integers(0, 65536, (h, w, 3))
    files["rgb16.png"] = png_bytes(w, h, 16, 2, [pack_bits(r.reshape(-1), 16) for r in rgb16])
    rgba16 = rng.integers(0, 65536, (h, w, 4))
    files["rgba16.png"] = png_bytes(w, h, 16, 6, [pack_bits(r.reshape(-1), 16) for r in rgba16])
    rgba8 = rng.integers(0, 256, (h, w, 4)).astype(np.uint8)
    rgba8[0, 0, 3], rgba8[0, 1, 3] = 0, 255
    files["rgba8.png"] = png_bytes(w, h, 8, 6, [r.tobytes() for r in rgba8])
    for bd in (1, 2, 4, 8):
        n = 1 << bd
        plte = rng.integers(0, 256, (n, 3)).astype(np.uint8).tobytes()
        trns = bytes(rng.integers(0, 256, max(1, n // 2)).astype(np.uint8))
        idx = rng.integers(0, n, (h, w))
        files[f"palette{bd}.png"] = png_bytes(w, h, bd, 3, [pack_bits(r, bd) for r in idx], plte=plte, trns=trns)
    # tRNS on gray and RGB: PIL compares the raw tRNS value with the stored 8-bit pixel.
    gt = rng.integers(0, 4, (h, w)) * 60
    files["gray8_trns.png"] = png_bytes(w, h, 8, 0, [pack_bits(r, 8) for r in gt], trns=struct.pack(">H", 120))
    rt = (rng.integers(0, 2, (h, w, 1)) * np.array([[[10, 20, 30]]])).astype(np.uint8)
    files["rgb8_trns.png"] = png_bytes(w, h, 8, 2, [r.tobytes() for r in rt], trns=struct.pack(">HHH", 10, 20, 30))
    # Adam7 interlacing: PIL writes none, so encode the passes by hand.
    im = rng.integers(0, 256, (9, 10, 3)).astype(np.uint8)
    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
    raw = b""
    for y0, x0, ys, xs in passes:  # (row start, col start, row step, col step)
        sub = im[y0::ys, x0::xs]
        if sub.size:
            raw += b"".join(b"\x00" + r.tobytes() for r in sub)
    ihdr = struct.pack(">IIBBBBB", 10, 9, 8, 2, 0, 0, 1)

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    files["interlaced.png"] = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    assert np.array_equal(pil_rgb(files["interlaced.png"]), im)

    for name in list(files):
        if name.endswith(".png") and not name.startswith("orient"):
            ref[name[:-4]] = pil_rgb(files[name])
            ref[name[:-4] + "_composite"] = pil_composite(files[name])

    # The fixture RGBA image composited over white (transformers 4.x convert_to_rgb).
    rgba_file = open(os.path.join(images_dir, "rgba_96x64.png"), "rb").read()
    ref["rgba_96x64_composite"] = pil_composite(rgba_file)

    # WebP: lossy, lossy with alpha, lossless, and EXIF orientation.
    photo = np.array(Image.open(os.path.join(images_dir, "photo_640x427.jpg")))[:48, :64]
    rgba = np.concatenate([photo, (np.arange(64)[None, :, None] * 4).repeat(48, 0).astype(np.uint8)], -1)
    for name, im, kw in [
        ("webp_lossy.webp", Image.fromarray(photo), dict(quality=80)),
        ("webp_lossy_alpha.webp", Image.fromarray(rgba, "RGBA"), dict(quality=80)),
        ("webp_lossless.webp", Image.fromarray(rgba, "RGBA"), dict(lossless=True)),
        ("webp_orient_8.webp", Image.fromarray(photo), dict(quality=80, exif=exif_blob(8))),
    ]:
        b = io.BytesIO()
        im.save(b, "WEBP", **kw)
        files[name] = b.getvalue()
        pil = Image.open(io.BytesIO(b.getvalue()))
        ref[name[:-5]] = np.array(ImageOps.exif_transpose(pil).convert("RGB"))
        if "alpha" in name or "lossless" in name:
            ref[name[:-5] + "_composite"] = pil_composite(b.getvalue())
    assert ref["webp_orient_8"].shape[:2] == (64, 48)

    # Every resize filter, up and down, one side only, both sides, to 1x1, and a strong
    # downscale of a fixture image (wide antialiasing support).
    src = Image.fromarray(np.clip(rng.normal(128, 60, (29, 41, 3)), 0, 255).astype(np.uint8))
    files["resize_src.png"] = png_bytes(41, 29, 8, 2, [r.tobytes() for r in np.array(src)])
    grad = Image.open(os.path.join(images_dir, "grad_333x500.png")).convert("RGB")
    sizes = [(17, 11), (97, 60), (41, 13), (15, 29), (60, 7), (1, 1), (41, 29)]
    names = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
    for f, fname in names.items():
        for (rw, rh) in sizes:
            ref[f"resize_{fname}_{rw}x{rh}"] = np.array(src.resize((rw, rh), resample=f))
        ref[f"resize_{fname}_grad_31x47"] = np.array(grad.resize((31, 47), resample=f))

    # Center crop: transcription of transformers.image_transforms.center_crop (numpy, CHW).
    def hf_center_crop(img, ch, cw):
        img = img.transpose(2, 0, 1)
        oh, ow = img.shape[-2:]
        top = (oh - ch) // 2
        left = (ow - cw) // 2
        bottom, right = top + ch, left + cw
        if top >= 0 and bottom <= oh and left >= 0 and right <= ow:
            return img[..., top:bottom, left:right].transpose(1, 2, 0)
        nh, nw = max(ch, oh), max(cw, ow)
        new = np.zeros_like(img, shape=img.shape[:-2] + (nh, nw))
        tp = int(np.ceil((nh - oh) / 2))
        lp = int(np.ceil((nw - ow) / 2))
        new[..., tp : tp + oh, lp : lp + ow] = img
        top, bottom, left, right = top + tp, bottom + tp, left + lp, right + lp
        return new[..., max(0, top) : min(nh, bottom), max(0, left) : min(nw, right)].transpose(1, 2, 0)

    crop_src = np.array(src)[:7, :10]
    for ch, cw in [(4, 6), (5, 9), (10, 13), (11, 4), (3, 16), (7, 10)]:
        ref[f"crop_{ch}x{cw}"] = hf_center_crop(crop_src, ch, cw)
    ref["crop_src"] = crop_src

    for name, data in files.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return ref


def make_llava_next(fixtures, out):
    pre = os.path.join(fixtures, "preprocess")
    manifest = json.load(open(os.path.join(fixtures, "manifest.json")))
    worst = 0.0
    for proc in ANYRES:
        os.makedirs(os.path.join(out, proc), exist_ok=True)
        shutil.copy(os.path.join(pre, proc, "preprocessor_config_slow.json"), os.path.join(out, proc, "preprocessor_config.json"))
        cfg = json.load(open(os.path.join(pre, proc, "preprocessor_config_slow.json")))
        tensors = {}
        for e in manifest["preprocess"]["entries"]:
            if e["processor"] != proc or not e.get("expected"):
                continue
            ref = load_safetensors(os.path.join(fixtures, e["expected"]))
            for i, tile in enumerate(ref["pixel_values_slow"][0]):
                u, err = invert_to_u8(tile, cfg)
                worst = max(worst, err)
                name = "%s/tile%d" % (e["image_stem"], i)
                if e["image_stem"] in ANYRES_FULL:
                    tensors[name] = u
                else:
                    tensors[name + ".crc32"] = np.array([zlib.crc32(u.tobytes()), u.shape[0], u.shape[1]], np.int64)
            tensors[e["image_stem"] + "/image_sizes"] = ref["image_sizes_slow"]
        write_st_gz(os.path.join(out, proc, "expected_u8.st.gz"), tensors)
        print(proc, sorted(tensors))
    case = next(c for c in manifest["cases"] if c["name"] == "llava_next_forward")
    dst = os.path.join(out, "llava_next_forward")
    os.makedirs(dst, exist_ok=True)
    model_cfg = os.path.join(fixtures, case["model"], "preprocessor_config.json")
    shutil.copy(model_cfg, os.path.join(dst, "preprocessor_config.json"))
    cfg = json.load(open(model_cfg))
    inputs = load_safetensors(os.path.join(fixtures, case["inputs"]))
    tensors = {"image_sizes": inputs["image_sizes"]}
    for i, tile in enumerate(inputs["pixel_values"][0]):
        tensors["tile%d" % i], err = invert_to_u8(tile, cfg)
        worst = max(worst, err)
    write_st_gz(os.path.join(dst, "expected_u8.st.gz"), tensors)
    meta = {k: case["meta"][k] for k in ("image_grid_pinpoints", "image_sizes_hw", "source_image_wh",
                                          "token_count_detail", "num_image_tokens", "vision_feature_select_strategy")}
    with open(os.path.join(fixtures, case["model"], "config.json")) as f:
        model = json.load(f)
    meta["vision_image_size"] = model["vision_config"]["image_size"]
    meta["vision_patch_size"] = model["vision_config"]["patch_size"]
    with open(os.path.join(dst, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print("llava_next_forward", sorted(tensors), "worst round-trip error", worst)


def main():
    fixtures, out = sys.argv[1], sys.argv[2]
    if sys.argv[3:] == ["llava_next"]:
        make_llava_next(fixtures, out)
        return
    pre = os.path.join(fixtures, "preprocess")
    manifest = json.load(open(os.path.join(fixtures, "manifest.json")))
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    for img in manifest["preprocess"]["images"]:
        shutil.copy(os.path.join(fixtures, img["file"]), os.path.join(out, "images"))

    decoded = load_safetensors(os.path.join(pre, "images", "decoded_rgb.safetensors"))
    dec = {}
    for stem, a in decoded.items():
        if stem in FULL_DECODED:
            dec[stem] = a
        else:
            dec[stem + ".crc32"] = np.array([zlib.crc32(a.tobytes()), a.shape[0], a.shape[1]], np.int64)
    write_st_gz(os.path.join(out, "decoded_rgb.st.gz"), dec)

    worst = 0.0
    for proc in PROCESSORS + UNSUPPORTED:
        os.makedirs(os.path.join(out, proc), exist_ok=True)
        shutil.copy(os.path.join(pre, proc, "preprocessor_config_slow.json"), os.path.join(out, proc, "preprocessor_config.json"))
    for proc in PROCESSORS:
        cfg = json.load(open(os.path.join(pre, proc, "preprocessor_config_slow.json")))
        tensors = {}
        for e in manifest["preprocess"]["entries"]:
            if e["processor"] != proc or not e.get("expected"):
                continue
            x = load_safetensors(os.path.join(fixtures, e["expected"]))["pixel_values_slow"][0]
            tensors[e["image_stem"]], err = invert_to_u8(x, cfg)
            worst = max(worst, err)
        write_st_gz(os.path.join(out, proc, "expected_u8.st.gz"), tensors)
        print(proc, sorted(tensors))
    print("worst round-trip error", worst)
    make_llava_next(fixtures, out)

    ref = make_extra(os.path.join(out, "extra"), os.path.join(pre, "images"))
    write_st_gz(os.path.join(out, "extra", "expected.st.gz"), ref)
    print("extra references:", len(ref))


if __name__ == "__main__":
    main()
