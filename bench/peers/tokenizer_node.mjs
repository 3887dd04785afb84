// The JS reference's side of bench/tokenizer_bench.cpp: load time of tokenizer.json files
// and encode throughput over the same text (written by `tokenizer_bench --write-text F`),
// with tokenizers.js (npm @huggingface/tokenizers, the tokenizer of @huggingface/transformers
// 4), installed by `npm ci` in tests/diff.
//
//   node bench/peers/tokenizer_node.mjs TEXT_FILE [--dir ../shared/tokenizers] [--names qwen,llama3,llama2] [--repeat 3]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const { Tokenizer } = await import(path.join(here, "../../tests/diff/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs"));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const textFile = args[0];
const dir = opt("dir", path.join(here, "../../../shared/tokenizers"));
const names = opt("names", "qwen,llama3,llama2").split(",");
const repeat = Number(opt("repeat", 3));
const text = fs.readFileSync(textFile, "utf8");
const bytes = Buffer.byteLength(text, "utf8");
const lines = text.split("\n").filter((l) => l.length > 0);
console.log(`text: ${(bytes / 1e6).toFixed(2)} MB, ${lines.length} lines`);
for (const name of names) {
  const file = path.join(dir, name, "tokenizer.json");
  let loadMs = Infinity, tok = null;
  for (let r = 0; r < repeat; ++r) {
    const t0 = performance.now();
    // Reading + JSON.parse is part of loading, as it is for lumen.
    tok = new Tokenizer(JSON.parse(fs.readFileSync(file, "utf8")), {});
    loadMs = Math.min(loadMs, performance.now() - t0);
  }
  let best = Infinity, tokens = 0, checksum = 0n;
  let all = [];
  for (let r = 0; r < repeat; ++r) {
    all = [];
    const t0 = performance.now();
    for (const line of lines) all.push(tok.encode(line, { add_special_tokens: false }).ids);
    best = Math.min(best, (performance.now() - t0) / 1e3);
  }
  for (const ids of all) {  // outside the timing
    tokens += ids.length;
    for (const id of ids) checksum = (checksum * 31n + BigInt(id)) & 0xffffffffffffffffn;
  }
  console.log(`${name.padEnd(8)} load ${loadMs.toFixed(1).padStart(7)} ms  encode ${(bytes / 1e6 / best).toFixed(2).padStart(6)} MB/s  ${tokens} tokens  checksum ${checksum.toString(16).padStart(16, "0")}`);
}
