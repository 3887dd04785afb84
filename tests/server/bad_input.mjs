// The bad-input suite against a `lumen serve` subprocess: malformed JSON, wrong types, unknown
// model, bad base64, a PNG bomb, an oversized body, missing/invalid API keys, a garbage HTTP
// request, a client that hangs up mid-stream, a full queue (429), and SIGTERM with a stream in
// flight. After every abuse the server must still answer /health; it must never crash.
//   node tests/server/bad_input.mjs --lumen build/lumen
import http from "node:http";
import net from "node:net";
import zlib from "node:zlib";
import { args, makeTinyModels, startServer, imageDataUri, check, summary } from "./harness.mjs";

const { lumen } = args();
const models = makeTinyModels(lumen, ["llava", "clip"]);
const KEY = "k3y";
const server = await startServer(lumen, ["-m", models.dirs.llava, "-m", models.dirs.clip, "--api-key", KEY,
  "--max-body-bytes", "1000000", "--max-image-pixels", "4000000"]);
const llava = "tiny-llava", clip = "tiny-clip";
const auth = { Authorization: "Bearer " + KEY, "Content-Type": "application/json" };

async function post(path, body, headers = auth, url = server.url) {
  const res = await fetch(url + path, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* checked below */ }
  return { status: res.status, json, text };
}

// Every error is OpenAI's shape with the expected status and code.
function expectError(r, status, code, what) {
  check(r.status === status, `${what}: status ${r.status}, want ${status} (${r.text.slice(0, 200)})`);
  const e = r.json && r.json.error;
  check(e && typeof e.message === "string" && typeof e.type === "string" && "param" in e && "code" in e, what + ": OpenAI error shape");
  if (code) check(e && e.code === code, `${what}: code ${e && e.code}, want ${code}`);
}

async function healthy(what) {
  const r = await fetch(server.url + "/health").catch((e) => ({ status: "down: " + e.message }));
  check(r.status === 200, `server answers /health after ${what} (${r.status})`);
}

// A PNG declaring huge dimensions with almost no data (valid CRCs, so only the size is wrong).
function pngBomb(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (buf) => { let c = 0xffffffff; for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const td = Buffer.concat([Buffer.from(type), data]);
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.alloc(64))), chunk("IEND", Buffer.alloc(0))]);
}

const chat = (content, extra = {}) => ({ model: llava, messages: [{ role: "user", content }], max_tokens: 4, ...extra });
const imagePart = (url) => [{ type: "image_url", image_url: { url } }, { type: "text", text: "what?" }];

try {
  // Authentication.
  expectError(await post("/v1/chat/completions", chat("hi"), { "Content-Type": "application/json" }), 401, "missing_api_key", "no key");
  expectError(await post("/v1/chat/completions", chat("hi"), { ...auth, Authorization: "Bearer nope" }), 401, "invalid_api_key", "wrong key");
  expectError(await post("/v1/chat/completions", chat("hi"), { ...auth, Authorization: KEY }), 401, "invalid_api_key", "key without Bearer");
  // Malformed bodies and wrong types.
  expectError(await post("/v1/chat/completions", "{\"model\": "), 400, "invalid_json", "truncated JSON");
  expectError(await post("/v1/chat/completions", "\u0000\u0001garbage"), 400, "invalid_json", "binary garbage");
  expectError(await post("/v1/chat/completions", "[]"), 400, "invalid_json", "array body");
  expectError(await post("/v1/chat/completions", { model: llava, messages: "hello" }), 400, "invalid_type", "messages as a string");
  expectError(await post("/v1/chat/completions", chat("hi", { temperature: "warm" })), 400, "invalid_type", "temperature as a string");
  expectError(await post("/v1/chat/completions", chat("hi", { max_tokens: -1 })), 400, "invalid_value", "negative max_tokens");
  expectError(await post("/v1/chat/completions", chat([{ type: "video" }])), 400, "invalid_value", "unknown part type");
  expectError(await post("/v1/chat/completions", { model: 7, messages: [] }), 400, "invalid_type", "model as a number");
  expectError(await post("/v1/embeddings", { model: clip, input: [[1, 2, 3]] }), 400, "invalid_type", "token-id embedding input");
  expectError(await post("/v1/classify", { model: clip, image: imageDataUri(), labels: [] }), 400, "invalid_value", "no labels");
  // Unknown model, wrong kind of model.
  expectError(await post("/v1/chat/completions", { ...chat("hi"), model: "gpt-4o" }), 404, "model_not_found", "unknown model");
  expectError(await post("/v1/embeddings", { model: "nope", input: "x" }), 404, "model_not_found", "unknown embedding model");
  expectError(await post("/v1/chat/completions", { ...chat("hi"), model: clip }), 400, "model_not_supported", "dual encoder asked to chat");
  // Images: bad base64, not an image, a PNG bomb, remote and local URLs.
  expectError(await post("/v1/chat/completions", chat(imagePart("data:image/png;base64,iVBOR%%%"))), 400, "invalid_base64", "bad base64");
  expectError(await post("/v1/chat/completions", chat(imagePart("data:image/png;base64," + Buffer.from("not an image").toString("base64")))), 400, "invalid_image", "not an image");
  const bomb = await post("/v1/chat/completions", chat(imagePart("data:image/png;base64," + pngBomb(100000, 100000).toString("base64"))));
  expectError(bomb, 400, "invalid_image", "PNG bomb (100000 x 100000)");
  check(bomb.json && /pixels/.test(bomb.json.error.message), "PNG bomb message names the pixel limit: " + (bomb.json && bomb.json.error.message));
  expectError(await post("/v1/embeddings", { model: clip, input: "data:image/png;base64," + pngBomb(30000, 30000).toString("base64") }), 400, "invalid_image", "PNG bomb as embedding input");
  expectError(await post("/v1/chat/completions", chat(imagePart("https://example.com/cat.png"))), 400, "unsupported_image_url", "remote URL");
  expectError(await post("/v1/chat/completions", chat(imagePart("/etc/passwd"))), 400, "invalid_image_url", "local path without --allow-local-files");
  expectError(await post("/v1/chat/completions", chat("look <image> here")), 400, "invalid_prompt", "image marker typed in the text");
  // Oversized body (the limit is 1 MB here).
  expectError(await post("/v1/chat/completions", chat("x".repeat(1_500_000))), 413, "request_too_large", "oversized body");
  await healthy("oversized body");
  // Unknown endpoint and method.
  const nf = await fetch(server.url + "/v1/does-not-exist", { headers: auth });
  check(nf.status === 404, "unknown endpoint 404");
  // A request that is not HTTP at all.
  await new Promise((resolve) => {
    const s = net.connect(new URL(server.url).port, "127.0.0.1", () => s.end("HELLO \u0000\u0001\r\n\r\n"));
    s.on("data", () => {}); s.on("close", resolve); s.on("error", resolve);
  });
  await healthy("a garbage request line");

  // A client that hangs up mid-stream: its sequence is cancelled and the server goes on.
  const before = await metric("lumen_cancelled_total", llava);
  await new Promise((resolve) => {
    const body = JSON.stringify(chat("Tell me a long story", { max_tokens: 1500, stream: true }));
    const req = http.request(server.url + "/v1/chat/completions", { method: "POST", headers: { ...auth, "Content-Length": Buffer.byteLength(body) } }, (res) => {
      let got = 0;
      res.on("data", (d) => { got += d.length; if (got > 300) { req.destroy(); resolve(); } });
      res.on("end", resolve);
    });
    req.on("error", () => resolve());
    req.end(body);
  });
  let after = before;
  for (let i = 0; i < 100 && after === before; i++) { await sleep(50); after = await metric("lumen_cancelled_total", llava); }
  check(after === before + 1, `the hung-up stream was cancelled (cancelled_total ${before} -> ${after})`);
  await healthy("a client hanging up mid-stream");
  const ok = await post("/v1/chat/completions", chat("still there?"));
  check(ok.status === 200, "a normal request after the abuse: " + ok.status);
} catch (e) {
  check(false, "unexpected exception: " + (e.stack || e));
}

// Metrics value for a per-model series, from the Prometheus text.
async function metric(name, model) {
  const text = await (await fetch(server.url + "/metrics")).text();
  const m = text.match(new RegExp(`^${name}\\{model="${model}"\\} (\\S+)$`, "m"));
  return m ? Number(m[1]) : NaN;
}
function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// A second server with one slot and no queue: a request beyond the slot gets 429.
// Then SIGTERM while a stream is in flight: the stream ends with its finish or a
// "shutting_down" error event and [DONE], and the process exits 0.
const small = await startServer(lumen, ["-m", models.dirs.llava, "--parallel", "1", "--max-queue", "0", "--shutdown-grace", "1"]);
try {
  const long = fetch(small.url + "/v1/chat/completions", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(chat("Tell me everything", { max_tokens: 1800, stream: true })) });
  const firstRes = await long;
  const reader = firstRes.body.getReader();
  await reader.read();  // the stream has started: the slot is taken
  const refused = await post("/v1/chat/completions", chat("me too"), { "Content-Type": "application/json" }, small.url);
  expectError(refused, 429, "queue_full", "request beyond slots and queue");
  check(refused.json && refused.json.error.type === "rate_limit_error", "429 type rate_limit_error");
  small.proc.kill("SIGTERM");
  let rest = "";
  const dec = new TextDecoder();
  for (;;) { const { value, done } = await reader.read(); if (done) break; rest += dec.decode(value); }
  check(rest.endsWith("data: [DONE]\n\n"), "the in-flight stream ends with [DONE] after SIGTERM");
  check(/"finish_reason":"(stop|length)"/.test(rest) || /"code":"shutting_down"/.test(rest), "the in-flight stream finished or was told the server is shutting down");
  const { code } = await small.exited;
  check(code === 0, "lumen serve exits 0 after SIGTERM: " + code);
  const refusedAfter = await fetch(small.url + "/health").then(() => false, () => true);
  check(refusedAfter, "no longer accepting connections after shutdown");
} catch (e) {
  check(false, "unexpected exception (second server): " + (e.stack || e));
} finally {
  await small.stop();
}

await server.stop();
const { code } = await server.exited;
check(code === 0, "main server exits 0 after SIGTERM: " + code);
models.cleanup();
process.exit(summary("bad_input"));
