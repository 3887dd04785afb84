// Load test and soak for `lumen serve` on loopback (a benchmark, not a test: run by hand).
// C concurrent clients send chat requests (every other one with an image) for D seconds and
// report status counts, p50/p99 latency, requests/s and tokens/s; the server's RSS
// (/proc/PID/status VmRSS) is sampled every second, and growth after warm-up is reported.
//   node bench/serve_load.mjs --lumen build/lumen --concurrency 32 --duration 60 --parallel 4
//   node bench/serve_load.mjs --lumen build/lumen --concurrency 8 --duration 120 --warmup 20   # soak
import { readFileSync } from "node:fs";
import { args, makeTinyModels, startServer, imageDataUri } from "../tests/server/harness.mjs";

const a = args();
const C = Number(a.concurrency || 32), D = Number(a.duration || 60), W = Number(a.warmup || 10);
const maxTokens = Number(a["max-tokens"] || 16);
const models = makeTinyModels(a.lumen, ["llava"]);
const server = await startServer(a.lumen, ["-m", models.dirs.llava, "--parallel", String(a.parallel || 4),
  "--max-queue", String(a["max-queue"] || 64)]);
const pid = server.proc.pid;
const rssKb = () => Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]);
const image = imageDataUri();

const statuses = {};
const latencies = [];
let tokens = 0, errors = 0;
const errorKinds = {};
const noteError = (what) => { errors++; errorKinds[what] = (errorKinds[what] || 0) + 1; };
const t0 = performance.now();
const end = t0 + D * 1000;
const rss = [];
const sampler = setInterval(() => rss.push({ t: (performance.now() - t0) / 1000, kb: rssKb() }), 1000);

async function client(i) {
  let n = 0;
  while (performance.now() < end) {
    const content = (n + i) % 2 === 0
      ? [{ type: "image_url", image_url: { url: image } }, { type: "text", text: `Describe it (${i}/${n})` }]
      : `Request ${i}/${n}: tell me something.`;
    const body = { model: "tiny-llava", messages: [{ role: "user", content }], max_tokens: maxTokens,
                   temperature: 0.8, seed: i * 1000 + n, stream: n % 3 === 0 };
    const s = performance.now();
    try {
      const res = await fetch(server.url + "/v1/chat/completions", { method: "POST",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const text = await res.text();
      statuses[res.status] = (statuses[res.status] || 0) + 1;
      if (res.status === 200) {
        latencies.push(performance.now() - s);
        if (!body.stream) tokens += JSON.parse(text).usage.completion_tokens;
        else if (!text.endsWith("data: [DONE]\n\n")) noteError("stream without [DONE]");
      }
    } catch (e) {
      noteError(String(e.cause ? e.cause.code || e.cause.message : e.message));
    }
    n++;
  }
}

await Promise.all(Array.from({ length: C }, (_, i) => client(i)));
const elapsed = (performance.now() - t0) / 1000;
clearInterval(sampler);
const alive = server.proc.exitCode === null;
await server.stop();
models.cleanup();

latencies.sort((x, y) => x - y);
const q = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : NaN;
const fivexx = Object.entries(statuses).filter(([s]) => s >= 500).reduce((t, [, n]) => t + n, 0);
const after = rss.filter((r) => r.t >= W);
const base = after.length ? after[0].kb : NaN, last = after.length ? after[after.length - 1].kb : NaN;
const peak = Math.max(...rss.map((r) => r.kb));
const report = {
  concurrency: C, duration_s: +elapsed.toFixed(1), statuses, transport_errors: errors, error_kinds: errorKinds, server_5xx: fivexx,
  server_alive_at_end: alive, requests_per_s: +(latencies.length / elapsed).toFixed(1),
  completion_tokens_per_s_nonstream: +(tokens / elapsed).toFixed(1),
  latency_ms: { p50: +q(0.5).toFixed(1), p90: +q(0.9).toFixed(1), p99: +q(0.99).toFixed(1), max: +q(1).toFixed(1) },
  rss_mb: { after_warmup: +(base / 1024).toFixed(1), end: +(last / 1024).toFixed(1), peak: +(peak / 1024).toFixed(1),
            growth_after_warmup_pct: +(100 * (last - base) / base).toFixed(1) },
};
console.log(JSON.stringify(report, null, 2));
process.exit(fivexx === 0 && errors === 0 && alive ? 0 : 1);
