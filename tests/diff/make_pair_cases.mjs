// Writes tests/data/tokenizers/pair_cases.json.gz: reference encodings of text pairs, for
// `TokenizerPairs` in tests/tokenizer_test.cpp. The reference is the Rust `tokenizers`
// library itself, through its node binding (npm @anush008/tokenizers, a prebuilt
// tokenizers 0.22.2 core), because tokenizers.js has no truncation; where no truncation is
// asked, tokenizers.js (the diff test's reference) is run as well and must agree on ids.
//
//   cd tests/diff && npm ci && npm install --no-save @anush008/tokenizers@0.6.0
//   node make_pair_cases.mjs            # rewrites ../data/tokenizers/pair_cases.json.gz
//
// Each tokenizer is a tokenizer.json from tests/data/tokenizers (gzipped), optionally with
// its post_processor replaced, so that every pair layout is covered: TemplateProcessing
// (BERT, LLaMA-2), BertProcessing, RobertaProcessing, ByteLevel (no specials, Qwen) and a
// Sequence of ByteLevel + TemplateProcessing (the LLaMA-3 layout).
import { Tokenizer as JsTokenizer } from "@huggingface/tokenizers";
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
let rust;
try {
  rust = require("@anush008/tokenizers");
} catch {
  console.error("make_pair_cases: needs @anush008/tokenizers (npm install --no-save @anush008/tokenizers@0.6.0)");
  process.exit(1);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const DATA = path.resolve(here, "../data/tokenizers");
const OUT = path.join(DATA, "pair_cases.json.gz");

const TOKENIZERS = [
  { name: "bert-template", file: "bert/hf_saved/tokenizer.json.gz" },
  { name: "bert-bertprocessing", file: "bert/hf_saved/tokenizer.json.gz",
    post_processor: { type: "BertProcessing", sep: ["[SEP]", 102], cls: ["[CLS]", 101] } },
  { name: "gpt2-roberta", file: "gpt2/hf_saved/tokenizer.json.gz",
    post_processor: { type: "RobertaProcessing", sep: ["<|endoftext|>", 50256], cls: ["<|endoftext|>", 50256],
      trim_offsets: true, add_prefix_space: false } },
  { name: "gpt2-sequence", file: "gpt2/hf_saved/tokenizer.json.gz",
    post_processor: { type: "Sequence", processors: [
      { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: "TemplateProcessing",
        single: [{ SpecialToken: { id: "<|endoftext|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
        pair: [{ SpecialToken: { id: "<|endoftext|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
          { SpecialToken: { id: "<|endoftext|>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
        special_tokens: { "<|endoftext|>": { id: "<|endoftext|>", ids: [50256], tokens: ["<|endoftext|>"] } } }] } },
  { name: "llama2-template", file: "llama2/tokenizer.json.gz" },
  { name: "qwen-bytelevel", file: "qwen/tokenizer.json.gz" },
];

const PAIRS = [
  ["Hello world", "How are you?"],
  ["A photo of a cat.", "Is the cat black or white?"],
  ["", "only the second"],
  ["only the first", ""],
  ["The quick brown fox jumps over the lazy dog. ".repeat(3).trim(), "short"],
  ["short", "The quick brown fox jumps over the lazy dog again and again."],
  ["café naïve Straße 東京", "emoji 👍🏽 test"],
  ["[CLS] looks <s> special", "<|endoftext|> is special"],
];

// [max_length, strategy, direction]; null: no truncation.
const TRUNCATIONS = [null, [5, "LongestFirst", "Right"], [8, "LongestFirst", "Right"], [13, "LongestFirst", "Right"],
  [20, "LongestFirst", "Right"], [9, "LongestFirst", "Left"], [10, "OnlyFirst", "Right"], [10, "OnlySecond", "Right"],
  [7, "OnlySecond", "Left"]];

const out = { generator: "tests/diff/make_pair_cases.mjs", reference: "tokenizers (Rust) via npm @anush008/tokenizers@0.6.0",
  tokenizers: [] };
let disagreements = 0, compared = 0;
for (const t of TOKENIZERS) {
  const j = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(DATA, t.file))).toString("utf8"));
  if (t.post_processor) j.post_processor = t.post_processor;
  j.truncation = null;
  j.padding = null;
  const js = new JsTokenizer(j, {});
  const cases = [];
  for (const [a, b] of PAIRS) {
    for (const add_special_tokens of [true, false]) {
      for (const tr of TRUNCATIONS) {
        const tok = rust.Tokenizer.fromString(JSON.stringify(j));
        if (tr) tok.setTruncation(tr[0], { strategy: tr[1], direction: tr[2].toLowerCase() });
        const c = { a, b, add_special_tokens };
        if (tr) c.truncation = { max_length: tr[0], strategy: tr[1], direction: tr[2] };
        try {
          const e = await tok.encode(a, b, { addSpecialTokens: add_special_tokens });
          c.ids = e.getIds();
          c.type_ids = e.getTypeIds();
          c.special_tokens_mask = e.getSpecialTokensMask();
        } catch (err) {
          c.error = String(err.message ?? err).slice(0, 120);
        }
        // Two tokenizers.js gaps are not compared: it takes an empty text_pair for none
        // (`text_pair || null`), and its ByteLevel post-processor drops the pair.
        const jsComparable = b !== "" && j.post_processor?.type !== "ByteLevel";
        if (!tr && jsComparable) {
          ++compared;
          const r = js.encode(a, { text_pair: b, add_special_tokens, return_token_type_ids: true });
          if (JSON.stringify(r.ids) !== JSON.stringify(c.ids)) {
            ++disagreements;
            console.error(`${t.name}: tokenizers.js differs on ${JSON.stringify([a, b])} special=${add_special_tokens}:\n` +
              `  rust ${JSON.stringify(c.ids)}\n  js   ${JSON.stringify(r.ids)}`);
          }
        }
        cases.push(c);
      }
    }
  }
  out.tokenizers.push({ name: t.name, file: t.file, post_processor: t.post_processor ?? null, cases });
  console.log(`${t.name}: ${cases.length} cases, ${cases.filter((c) => c.error).length} errors`);
}
fs.writeFileSync(OUT, zlib.gzipSync(JSON.stringify(out) + "\n", { level: 9 }));
console.log(`wrote ${OUT} (${fs.statSync(OUT).size} bytes); tokenizers.js agreed on ${compared - disagreements} ` +
  `of ${compared} untruncated cases`);
if (disagreements) process.exit(1);
