// Differential test: lumen's tokenizers against the JS reference, tokenizers.js
// (npm @huggingface/tokenizers, the tokenizer implementation of @huggingface/transformers 4),
// on generated strings with a fixed seed. One tokenizer per kind the surveyed models use:
// byte-level BPE (Qwen, LLaMA-3), SentencePiece-style BPE with byte fallback (LLaMA-2),
// Unigram (the sentencepiece test model as a tokenizer.json) and WordPiece (BERT).
//
//   node tests/diff/tokenizer_diff.mjs [--lumen build/lumen] [--n 5000] [--seed 1234]
//
// Both sides read the same tokenizer.json; lumen runs `lumen tokenize --tokenizer F --jsonl`.
// Exits 1 on any mismatch, printing the first differing strings. Known differences between
// the JS reference and the Rust `tokenizers` library are excluded by the narrow rules in
// `excluded()` below (each one documented there); nothing else is skipped.
import { Tokenizer } from "@huggingface/tokenizers";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const N = Number(opt("n", 5000));
const SEED = Number(opt("seed", 1234));
const LUMEN = path.resolve(opt("lumen", path.join(root, "build/lumen")));
const SHARED = path.resolve(opt("shared", path.join(root, "../shared/tokenizers")));
const ONLY = opt("only", "");

// ---- deterministic generator ----
function mulberry32(a) {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ["the", "quick", "brown", "fox", "Hello", "world", "photo", "of", "a", "cat", "don't", "it's",
  "we'll", "I'm", "they've", "you'd", "HTTP", "json", "café", "naïve", "Straße", "über", "résumé", "x", "A",
  "tokenizer", "multimodal", "LLaVA", "GPT-4o", "e.g.", "U.S.A.", "snake_case", "CamelCase", "foo.bar()"];
const SPECIAL_LIKE = ["<s>", "</s>", "<unk>", "<pad>", "<|endoftext|>", "<|startoftext|>", "[CLS]", "[SEP]",
  "[MASK]", "[PAD]", "[UNK]", "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|begin_of_text|>",
  "<|end_of_text|>", "<|start_header_id|>", "<image>", "<|endof", "endoftext|>", "< s>", "<s >", "<<s>>",
  "[CLS", "CLS]", "<|im_end|", "</w>", "\u2581", "\u2581\u2581", "Ġ", "Ċ", "##ing", "<0x41>"];
// [lo, hi] code point ranges, each a script or symbol block.
const RANGES = [[0x41, 0x5a], [0x61, 0x7a], [0x30, 0x39], [0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60],
  [0x7b, 0x7e], [0xc0, 0xff], [0x100, 0x17f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff],
  [0x600, 0x6ff], [0x900, 0x97f], [0xe00, 0xe7f], [0x1100, 0x11ff], [0x3040, 0x30ff], [0x4e00, 0x9fff],
  [0xac00, 0xd7a3], [0x2000, 0x206f], [0x20a0, 0x20cf], [0x2100, 0x214f], [0x2190, 0x21ff],
  [0x2500, 0x257f], [0xff00, 0xffef], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f900, 0x1f9ff],
  [0x1d400, 0x1d7ff], [0x10000, 0x1007f], [0x20000, 0x2a6df], [0xe000, 0xe0ff]];
const COMBINING = [[0x300, 0x36f], [0x1ab0, 0x1ace], [0x20d0, 0x20f0]];
// Code points unassigned in every Unicode version (noncharacters, gaps kept free).
const UNASSIGNED = ["\u0378", "\u0380", "\ufdd0", "\uffff", "\u{1fffe}", "\u{10ffff}"];
const SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009",
  "\u200b", "\u200d", "\ufeff", "\u2028", "\u0085", " \t "];
const EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵", "❤️", "🦙", "🧑🏿‍💻", "☺︎", "#️⃣"];

function generate(n, seed) {
  const rnd = mulberry32(seed);
  const int = (k) => Math.floor(rnd() * k);
  const pick = (a) => a[int(a.length)];
  // Random code points are drawn among those assigned in node's Unicode tables; lumen's
  // (ICU) may be older, and characters new in Unicode 16/17 would then differ in category
  // and combining class for reasons that are not tokenizer bugs. Unassigned code points
  // come from UNASSIGNED only.
  const cp = (ranges) => {
    for (;;) {
      const [lo, hi] = pick(ranges);
      const c = String.fromCodePoint(lo + int(hi - lo + 1));
      if (!/\p{Cn}/u.test(c)) return c;
    }
  };
  const fragment = () => {
    switch (int(12)) {
      case 0: case 1: return pick(WORDS);
      case 2: return pick(SPECIAL_LIKE);
      case 3: return pick(SPACES);
      case 4: { let s = ""; for (let k = 1 + int(8); k > 0; --k) s += cp(RANGES); return s; }
      case 5: { let s = cp(RANGES.slice(0, 2)); for (let k = 1 + int(3); k > 0; --k) s += cp(COMBINING); return s; }
      case 6: return String(int(10 ** (1 + int(9))));
      case 7: return pick(EMOJI);
      case 8: { const w = pick(WORDS); return w.repeat(2 + int(40)); }  // long words
      case 9: return rnd() < 0.8 ? String.fromCodePoint(pick([0, 1, 7, 8, 0x0b, 0x0c, 0x0d, 0x1b, 0x1f, 0x7f, 0x80, 0x9f, 0xad])) : pick(UNASSIGNED);
      case 10: return pick(["...", "!!", "?!", "--", "'", "\"", "''", "``", "(", ")", "[", "]", "{}", "$5.00", "100%", "a/b", "C++", "@user", "#tag"]);
      default: { let s = ""; for (let k = 1 + int(6); k > 0; --k) s += cp(RANGES.slice(0, 14)); return s; }
    }
  };
  const out = [];
  for (let i = 0; i < n; ++i) {
    let s = "";
    for (let k = int(10); k >= 0; --k) s += fragment() + (rnd() < 0.5 ? " " : "");
    if (rnd() < 0.15) s = pick(SPACES) + s;
    out.push(s);
  }
  return out;
}

// ---- the tokenizers under test ----
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lumen_diff_"));
const gunzipTo = (src, name) => {
  const dst = path.join(tmp, name);
  fs.writeFileSync(dst, zlib.gunzipSync(fs.readFileSync(src)));
  return dst;
};

function unigramJson() {
  // The sentencepiece test model (Unigram, 1000 pieces) as a tokenizer.json. The JS
  // reference implements the Precompiled normalizer as NFKC plus a few replacements, not
  // the real charsmap (see the README), so this test declares NFKC, which both sides
  // implement from the Unicode tables; the charsmap itself is checked against the
  // sentencepiece library by the fixtures.
  const src = path.join(root, "tests/data/tokenizers/sentencepiece/tokenizer.json.gz");
  const j = JSON.parse(zlib.gunzipSync(fs.readFileSync(src)).toString("utf8"));
  j.normalizer = { type: "NFKC" };
  // The fixture converter hid the control pieces from the model ("\uffff<s>"); a real
  // converted tokenizer.json has them in the vocab and in added_tokens.
  j.model.vocab = j.model.vocab.map(([p, score]) => [p.startsWith("\uffff") ? p.slice(1) : p, score]);
  // As converted tokenizers list them (tokenizers.js maps template tokens through this list).
  j.added_tokens = ["<unk>", "<s>", "</s>"].map((content, id) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const dst = path.join(tmp, "unigram.json");
  fs.writeFileSync(dst, JSON.stringify(j));
  return dst;
}

const KINDS = [
  { kind: "byte-level BPE", name: "qwen", file: () => path.join(SHARED, "qwen/tokenizer.json") },
  { kind: "byte-level BPE", name: "llama3", file: () => path.join(SHARED, "llama3/tokenizer.json") },
  { kind: "SP-BPE byte fallback", name: "llama2", file: () => path.join(SHARED, "llama2/tokenizer.json") },
  { kind: "Unigram", name: "sentencepiece-unigram", file: unigramJson },
  { kind: "WordPiece", name: "bert", file: () => gunzipTo(path.join(root, "tests/data/tokenizers/bert/hf_saved/tokenizer.json.gz"), "bert.json") },
];

// Known JS-vs-Rust differences, excluded by narrow rules (returns a reason or null).
function excluded(name, text) {
  // BertNormalizer clean_text: Rust drops every "other" character (Cc Cf Cs Co and Cn,
  // unassigned), tokenizers.js's is_control tests only Cc Cf Co Cs, so it keeps unassigned
  // code points (e.g. "x\u0378" is [UNK] in JS, "x" in Rust and lumen).
  if (name === "bert" && /\p{Cn}/u.test(text)) return "unassigned code point (BertNormalizer clean_text)";
  // BertNormalizer handle_chinese_chars: tokenizers.js walks UTF-16 code units
  // (charCodeAt), so CJK ideographs outside the BMP (U+20000..U+2FA1F, extensions B-F and
  // compatibility supplement) are never set apart; Rust walks code points and splits them
  // off ("a\u{20000}b" is one word in JS, three in Rust and lumen).
  if (name === "bert" && /[\u{20000}-\u{2FA1F}]/u.test(text)) return "astral CJK ideograph (handle_chinese_chars)";
  return null;
}

let failed = false;
const summary = [];
const texts = generate(N, SEED);
for (const k of KINDS) {
  if (ONLY && !ONLY.split(",").includes(k.name)) continue;
  const file = k.file();
  if (!fs.existsSync(file)) {
    console.error(`tokenizer_diff: ${k.name}: ${file} is missing`);
    failed = true;
    continue;
  }
  const t0 = performance.now();
  const ref = new Tokenizer(JSON.parse(fs.readFileSync(file, "utf8")), {});
  const cases = texts.map((text, i) => ({ text, special: i % 2 === 0 }));
  const want = cases.map((c) => ref.encode(c.text, { add_special_tokens: c.special }).ids);
  const t1 = performance.now();
  const got = [];
  for (const special of [true, false]) {
    const input = path.join(tmp, `in_${k.name}_${special}.jsonl`);
    const idx = cases.map((c, i) => (c.special === special ? i : -1)).filter((i) => i >= 0);
    fs.writeFileSync(input, idx.map((i) => JSON.stringify(cases[i].text)).join("\n") + "\n");
    const argv = ["tokenize", "--tokenizer", file, "--jsonl", input];
    if (!special) argv.push("--no-special");
    const out = execFileSync(LUMEN, argv, { maxBuffer: 1 << 30 }).toString("utf8").trimEnd().split("\n");
    if (out.length !== idx.length) throw new Error(`${k.name}: lumen printed ${out.length} lines for ${idx.length} texts`);
    idx.forEach((i, j) => (got[i] = JSON.parse(out[j])));
  }
  const t2 = performance.now();
  let bad = 0, skipped = 0;
  const reasons = {};
  const shown = [];
  for (let i = 0; i < cases.length; ++i) {
    if (JSON.stringify(got[i]) === JSON.stringify(want[i])) continue;
    const why = excluded(k.name, cases[i].text);
    if (why) { ++skipped; reasons[why] = (reasons[why] ?? 0) + 1; continue; }
    ++bad;
    if (shown.length < 5) {
      let p = 0;
      while (p < want[i].length && got[i][p] === want[i][p]) ++p;
      shown.push(`  ${JSON.stringify(cases[i].text)} (special=${cases[i].special})\n` +
        `    first difference at token ${p}\n    js:    ${JSON.stringify(want[i].slice(Math.max(0, p - 3), p + 6))}\n` +
        `    lumen: ${JSON.stringify(got[i].slice(Math.max(0, p - 3), p + 6))}`);
    }
  }
  const line = `${k.kind.padEnd(22)} ${k.name.padEnd(22)} ${cases.length} strings, ${bad} differ` +
    (skipped ? `, ${skipped} excluded (${Object.entries(reasons).map(([r, c]) => `${c} ${r}`).join("; ")})` : "") + `  (js ${(t1 - t0).toFixed(0)} ms, lumen ${(t2 - t1).toFixed(0)} ms)`;
  summary.push(line);
  console.log(line);
  if (bad) {
    failed = true;
    console.log(shown.join("\n"));
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
if (failed) {
  console.error("tokenizer_diff: FAILED (lumen differs from the JS reference)");
  process.exit(1);
}
console.log("tokenizer_diff: all kinds match");
