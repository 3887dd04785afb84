// Differential test: lumen's tokenizers against the JS reference, tokenizers.js
// (npm @huggingface/tokenizers, the tokenizer implementation of @huggingface/transformers 4),
// on generated strings with a fixed seed, for each kind the surveyed models use: byte-level
// BPE (GPT-2's full vocabulary under the GPT-2, LLaMA-3 and Qwen pre-tokenizers), SentencePiece
// -style BPE with byte fallback (LLaMA-2), Unigram (the sentencepiece test model as a
// tokenizer.json) and WordPiece (BERT). All of these come from tests/data/tokenizers, so the
// test needs nothing outside the repository; the full-size Qwen and LLaMA-3 files are run as
// an extra when a shared tokenizer tree is found (see sharedDir()).
//
//   node tests/diff/tokenizer_diff.mjs [--lumen build/lumen] [--n 5000] [--seed 1234]
//        [--only gpt2,bert] [--shared DIR] [--extras off]
//
// Both sides read the same tokenizer.json; lumen runs `lumen tokenize --tokenizer F --jsonl`.
// Exits 1 on any mismatch, or when a kind was compared on fewer than --n strings. Known
// differences between the JS reference and the Rust `tokenizers` library are covered by the
// narrow rules in `excluded()` below (each one documented there); strings a rule covers do
// not count towards the --n, so every tokenizer is checked on --n strings in full.
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
// Every required tokenizer is built from files inside the repository (tests/data/tokenizers),
// so the test runs the same on a clean clone. The full-size Qwen and LLaMA-3 files are run
// too when a shared tokenizer tree is found (--shared DIR, $LUMEN_SHARED_TOKENIZERS,
// ../shared/tokenizers or /work/shared/tokenizers); they are an extra, never required.
const DATA = path.join(root, "tests/data/tokenizers");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "lumen_diff_"));
const gunzip = (rel) => zlib.gunzipSync(fs.readFileSync(path.join(DATA, rel)));
const gunzipTo = (rel, name) => {
  const dst = path.join(tmp, name);
  fs.writeFileSync(dst, gunzip(rel));
  return dst;
};
const writeJson = (name, j) => {
  const dst = path.join(tmp, name);
  fs.writeFileSync(dst, JSON.stringify(j));
  return dst;
};

// The regexes of the byte-level families' Split pre-tokenizers, as their tokenizer.json
// files spell them (LLaMA-3 groups digits by three, Qwen2/3 takes them one at a time).
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// GPT-2's full vocabulary (50257 tokens, 50000 merges, from vocab.json + merges.txt) as a
// tokenizer.json. `variant` picks the pipeline around it:
//   "gpt2":   GPT-2's own (ByteLevel with the GPT-2 regex), merges as "a b" strings;
//   "llama3": LLaMA-3's Split regex + ByteLevel without regex, ignore_merges, a bos
//             template; merges as [a, b] pairs (the newer serialization);
//   "qwen":   Qwen's NFC normalizer, Split regex and ByteLevel post-processor.
let gpt2Files;
function gpt2Json(variant) {
  gpt2Files ??= {
    vocab: JSON.parse(gunzip("diff/gpt2_vocab.json.gz").toString("utf8")),
    merges: gunzip("diff/gpt2_merges.txt.gz").toString("utf8").split("\n")
      .filter((l) => l && !l.startsWith("#version")),
  };
  const { vocab, merges } = gpt2Files;
  const eot = "<|endoftext|>";
  const model = { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
    end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges };
  const byteLevel = (extra) => ({ type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true, ...extra });
  const split = (regex) => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });
  const j = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [{ id: vocab[eot], content: eot, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null, pre_tokenizer: byteLevel(), post_processor: byteLevel({ trim_offsets: false }),
    decoder: byteLevel(), model,
  };
  if (variant === "llama3") {
    j.pre_tokenizer = { type: "Sequence", pretokenizers: [split(LLAMA3_REGEX), byteLevel({ use_regex: false })] };
    j.post_processor = { type: "TemplateProcessing",
      single: [{ SpecialToken: { id: eot, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: eot, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: eot, type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { [eot]: { id: eot, ids: [vocab[eot]], tokens: [eot] } } };
    model.ignore_merges = true;
    model.merges = merges.map((m) => m.split(" "));
  } else if (variant === "qwen") {
    j.normalizer = { type: "NFC" };
    j.pre_tokenizer = { type: "Sequence", pretokenizers: [split(QWEN_REGEX), byteLevel({ use_regex: false, trim_offsets: false })] };
    j.post_processor = byteLevel({ use_regex: false, trim_offsets: false });
  }
  return writeJson(`gpt2_${variant}.json`, j);
}

function unigramJson() {
  // The sentencepiece test model (Unigram, 1000 pieces) as a tokenizer.json. The JS
  // reference implements the Precompiled normalizer as NFKC plus a few replacements, not
  // the real charsmap (see the README), so this test declares NFKC, which both sides
  // implement from the Unicode tables; the charsmap itself is checked against the
  // sentencepiece library by the fixtures.
  const j = JSON.parse(gunzip("sentencepiece/tokenizer.json.gz").toString("utf8"));
  j.normalizer = { type: "NFKC" };
  // The fixture converter hid the control pieces from the model ("\uffff<s>"); a real
  // converted tokenizer.json has them in the vocab and in added_tokens.
  j.model.vocab = j.model.vocab.map(([p, score]) => [p.startsWith("\uffff") ? p.slice(1) : p, score]);
  // As converted tokenizers list them (tokenizers.js maps template tokens through this list).
  j.added_tokens = ["<unk>", "<s>", "</s>"].map((content, id) => ({
    id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return writeJson("unigram.json", j);
}

function sharedDir() {
  const candidates = [opt("shared", ""), process.env.LUMEN_SHARED_TOKENIZERS ?? "",
    path.join(root, "../shared/tokenizers"), "/work/shared/tokenizers"];
  for (const c of candidates) if (c && fs.existsSync(path.join(c, "qwen/tokenizer.json"))) return path.resolve(c);
  return null;
}
const SHARED = sharedDir();

// The four kinds the acceptance names; each must be compared on at least N strings.
const REQUIRED_KINDS = ["byte-level BPE", "SP-BPE byte fallback", "Unigram", "WordPiece"];
const KINDS = [
  { kind: "byte-level BPE", name: "gpt2", file: () => gpt2Json("gpt2") },
  { kind: "byte-level BPE", name: "gpt2-llama3-split", file: () => gpt2Json("llama3") },
  { kind: "byte-level BPE", name: "gpt2-qwen-split", file: () => gpt2Json("qwen") },
  { kind: "SP-BPE byte fallback", name: "llama2", file: () => gunzipTo("diff/llama2_tokenizer.json.gz", "llama2.json") },
  { kind: "Unigram", name: "sentencepiece-unigram", file: unigramJson },
  { kind: "WordPiece", name: "bert", file: () => gunzipTo("bert/hf_saved/tokenizer.json.gz", "bert.json") },
  { kind: "byte-level BPE", name: "qwen", extra: true, file: () => SHARED && path.join(SHARED, "qwen/tokenizer.json") },
  { kind: "byte-level BPE", name: "llama3", extra: true, file: () => SHARED && path.join(SHARED, "llama3/tokenizer.json") },
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
  // Lowercase (BertNormalizer): tokenizers.js calls String.prototype.toLowerCase, which
  // applies Unicode's final-sigma rule ("wΣ4" -> "wς4"); Rust lowercases char by char
  // (char::to_lowercase), so Σ is always σ there, as in lumen.
  if (name === "bert" && /\u03a3/u.test(text)) return "capital sigma (final-sigma lowercasing)";
  // ByteLevel's built-in GPT-2 regex: tokenizers.js runs it as a JS RegExp whose \s
  // includes U+FEFF and lacks U+0085 (its own regex translator fixes this for Split
  // patterns, not for this hard-coded one); Rust's Oniguruma \s is White_Space, as
  // lumen's ("x \ufeff" is " " + "\ufeff" in JS, " \ufeff" in Rust and lumen).
  if (name === "gpt2" && /[\ufeff\u0085]/u.test(text)) return "U+FEFF/U+0085 (JS \\s in ByteLevel's regex)";
  return null;
}

let failed = false;
const summary = [];
const compared = {};  // kind -> strings compared (excluded ones not counted)
// One pool of strings; each tokenizer takes them in order until it has N that no exclusion
// rule covers, so every tokenizer is compared on exactly N fully checked strings (strings
// a rule covers are run too, and their differences are reported, not counted).
const pool = generate(4 * N, SEED);
for (const k of KINDS) {
  if (ONLY && !ONLY.split(",").includes(k.name)) continue;
  if (k.extra && opt("extras", "auto") === "off") continue;
  const file = k.file();
  if (!file || !fs.existsSync(file)) {
    if (k.extra) {
      console.log(`${k.kind.padEnd(22)} ${k.name.padEnd(22)} not run (extra: no shared tokenizer tree found)`);
      continue;
    }
    console.error(`tokenizer_diff: ${k.name}: ${file} is missing`);
    failed = true;
    continue;
  }
  const t0 = performance.now();
  const ref = new Tokenizer(JSON.parse(fs.readFileSync(file, "utf8")), {});
  const cases = [];
  for (let i = 0, plain = 0; plain < N; ++i) {
    if (i >= pool.length) throw new Error(`${k.name}: the exclusion rules cover too many strings`);
    if (!excluded(k.name, pool[i])) ++plain;
    cases.push({ text: pool[i], special: i % 2 === 0 });
  }
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
  const exempt = cases.length - N;
  const line = `${k.kind.padEnd(22)} ${k.name.padEnd(22)} ${N} strings, ${bad} differ` +
    (exempt ? `; +${exempt} under an exclusion rule, ${skipped} of them differ (${Object.entries(reasons).map(([r, c]) => `${c} ${r}`).join("; ")})` : "") + `  (js ${(t1 - t0).toFixed(0)} ms, lumen ${(t2 - t1).toFixed(0)} ms)`;
  summary.push(line);
  compared[k.kind] = (compared[k.kind] ?? 0) + N;
  console.log(line);
  if (bad) {
    failed = true;
    console.log(shown.join("\n"));
  }
}
fs.rmSync(tmp, { recursive: true, force: true });
if (!ONLY) {
  // Every kind must have been compared on at least N strings (the acceptance's 5,000 when
  // run with the default --n); a kind that silently dropped out fails the test.
  for (const kind of REQUIRED_KINDS) {
    const n = compared[kind] ?? 0;
    console.log(`${kind.padEnd(22)} ${n} strings compared in all`);
    if (n < N) {
      console.error(`tokenizer_diff: ${kind}: only ${n} strings compared, fewer than ${N}`);
      failed = true;
    }
  }
}
if (failed) {
  console.error("tokenizer_diff: FAILED (lumen differs from the JS reference)");
  process.exit(1);
}
console.log("tokenizer_diff: all kinds match");
