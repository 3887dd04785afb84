#!/usr/bin/env node
// ONNX Runtime (onnxruntime-node, CPU) peer of `lumen bench clip`: runs the image encoder that
// clip_vision_torch.py --export-onnx wrote (pixel_values [B,3,S,S] -> image_embeds [B,P]).
//
//   node ort_clip.mjs --model DIR --onnx FILE --batch N --threads T --iters K --warmup W
//       prints one JSON line {"peer":"onnxruntime","images_per_s":..,"ms_per_image":..,...}
//   node ort_clip.mjs --model DIR --onnx FILE --check EMBEDS.npy [--pixels PIX.npy] [--tol 1e-4]
//       runs the pixels that clip_vision_torch.py --dump-embeds saved (default PIX: EMBEDS-stem
//       .pixel_values.npy) and compares with its embeddings; exit 1 when max |diff| > tol.
import fs from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';

function parseArgs(argv) {
  const opts = {batch: 1, threads: 1, iters: 5, warmup: 1, seed: 0, tol: 1e-4};
  const numeric = new Set(['batch', 'threads', 'iters', 'warmup', 'seed', 'tol']);
  const known = new Set([...numeric, 'model', 'onnx', 'check', 'pixels']);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !known.has(m[1])) throw new Error(`unknown argument '${argv[i]}'`);
    const value = m[2] !== undefined ? m[2] : argv[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    if (numeric.has(m[1])) {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`--${m[1]}: '${value}' is not a number`);
      opts[m[1]] = n;
    } else {
      opts[m[1]] = value;
    }
  }
  if (!opts.onnx) throw new Error('--onnx FILE is required');
  for (const k of ['batch', 'threads', 'iters']) {
    if (!Number.isInteger(opts[k]) || opts[k] < 1) throw new Error(`--${k} must be an integer >= 1`);
  }
  if (!Number.isInteger(opts.warmup) || opts.warmup < 0) throw new Error('--warmup must be >= 0');
  return opts;
}

// Image geometry from the checkpoint's config.json (CLIPModel nests it under vision_config).
function imageShape(modelDir) {
  const file = path.join(modelDir, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(file, 'utf8'));
  const vc = cfg.vision_config ?? cfg;
  if (!Number.isInteger(vc.image_size)) throw new Error(`${file}: vision config has no image_size`);
  return {channels: vc.num_channels ?? 3, size: vc.image_size};
}

// Reads a little-endian float32 C-order .npy (what numpy.save writes for float32 arrays).
function readNpyF32(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  if (descr !== '<f4') throw new Error(`${file}: dtype ${descr}, expected <f4 (float32)`);
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order not supported`);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '';
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  if (buf.length < dataStart + 4 * count) throw new Error(`${file}: truncated`);
  // Copy: the Buffer's offset need not be 4-byte aligned.
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(dataStart + 4 * i);
  return {shape, data};
}

// Deterministic filler for the timed input (its values do not change the work done).
function seededPixels(count, seed) {
  let s = (seed * 2654435761 + 0x9e3779b9) >>> 0;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2147483648 - 1;  // uniform in [-1, 1)
  }
  return out;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(opts.onnx, {
    executionProviders: ['cpu'],
    intraOpNumThreads: opts.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  const run = async (tensor) => (await session.run({[inputName]: tensor}))[outputName];

  if (opts.check) {
    const pixFile = opts.pixels ?? opts.check.replace(/\.npy$/, '') + '.pixel_values.npy';
    const pix = readNpyF32(pixFile);
    const want = readNpyF32(opts.check);
    const got = await run(new ort.Tensor('float32', pix.data, pix.shape));
    if (got.dims.join(',') !== want.shape.join(',')) {
      throw new Error(`output shape [${got.dims}] vs ${opts.check} [${want.shape}]`);
    }
    let maxDiff = 0;
    for (let i = 0; i < want.data.length; i++) {
      const d = Math.abs(got.data[i] - want.data[i]);
      if (!(d <= maxDiff)) maxDiff = d;  // also catches NaN
    }
    const ok = maxDiff <= opts.tol;
    console.log(JSON.stringify({check: 'onnxruntime_vs_pytorch', ok, max_abs_diff: maxDiff,
                                tol: opts.tol, shape: want.shape}));
    return ok ? 0 : 1;
  }

  if (!opts.model) throw new Error('--model DIR is required (image size comes from its config.json)');
  const {channels, size} = imageShape(opts.model);
  const dims = [opts.batch, channels, size, size];
  const input = new ort.Tensor('float32', seededPixels(dims.reduce((a, b) => a * b, 1), opts.seed), dims);
  for (let i = 0; i < opts.warmup; i++) await run(input);
  const times = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < opts.iters; i++) {
    const t0 = process.hrtime.bigint();
    await run(input);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  // All threads' user+system time; on a busy machine it shows the work done.
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const total = times.reduce((a, b) => a + b, 0);
  const ips = (opts.batch * opts.iters) / total;
  const sorted = [...times].sort((a, b) => a - b);
  const round = (x, d) => Number(x.toFixed(d));
  console.log(JSON.stringify({
    peer: 'onnxruntime', images_per_s: round(ips, 4), ms_per_image: round(1000 / ips, 3),
    cpu_ms_per_image: round((1000 * cpuSeconds) / (opts.batch * opts.iters), 3),
    batch: opts.batch, threads: opts.threads, iters: opts.iters, warmup: opts.warmup,
    ms_per_batch_min: round(1000 * sorted[0], 3),
    ms_per_batch_median: round(1000 * sorted[Math.floor(sorted.length / 2)], 3),
    version: ort.env.versions?.node ?? null,
  }));
  return 0;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`ort_clip: ${err.message}`);
  process.exit(2);
});
