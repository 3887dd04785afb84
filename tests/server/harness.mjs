// Shared by the lumen serve node tests: make-tiny checkpoints, a `lumen serve` subprocess on a
// free port (the port is read from its startup line), and small assertion helpers.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function args() {
  const out = { lumen: path.join(repo, "build/lumen") };
  const a = process.argv.slice(2);
  for (let i = 0; i < a.length; i += 2) out[a[i].replace(/^--/, "")] = a[i + 1];
  return out;
}

// Writes make-tiny checkpoints (random weights, real tokenizers) into a scratch folder.
export function makeTinyModels(lumen, families) {
  const root = mkdtempSync(path.join(tmpdir(), "lumen-serve-"));
  const dirs = {};
  for (const f of families) {
    dirs[f] = path.join(root, "tiny-" + f);
    execFileSync(lumen, ["make-tiny", "-f", f, "-o", dirs[f], "--seed", "3"], { stdio: "pipe" });
  }
  return { root, dirs, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

// Starts `lumen serve --port 0 ...` and resolves once it prints where it listens.
export function startServer(lumen, serveArgs, { quiet = true } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(lumen, ["serve", "--port", "0", ...serveArgs], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    const timer = setTimeout(() => reject(new Error("lumen serve did not start in 60 s:\n" + err)), 60000);
    proc.stderr.on("data", (d) => {
      err += d.toString();
      if (!quiet) process.stderr.write(d);
      const m = err.match(/on http:\/\/([^/]+)\//);
      if (m && !proc.url) {
        clearTimeout(timer);
        proc.url = "http://" + m[1];
        resolve({
          url: proc.url,
          proc,
          log: () => err,
          exited: new Promise((r) => proc.on("exit", (code, signal) => r({ code, signal }))),
          stop: async () => {
            if (proc.exitCode !== null) return;
            proc.kill("SIGTERM");
            await new Promise((r) => proc.on("exit", r));
          },
        });
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      if (!proc.url) reject(new Error(`lumen serve exited with ${code}:\n${err}`));
    });
  });
}

export function imageDataUri(file = path.join(repo, "data/images/example.jpg")) {
  return "data:image/jpeg;base64," + readFileSync(file).toString("base64");
}

let failures = 0;
let passes = 0;
export function check(cond, what) {
  if (cond) {
    passes++;
  } else {
    failures++;
    console.error("FAIL: " + what);
  }
}
export function summary(name) {
  console.log(`${name}: ${passes} checks passed, ${failures} failed`);
  return failures === 0 ? 0 : 1;
}
