// The web page at / driven in real headless Chromium (Debian's /usr/bin/chromium through
// playwright-core): load it, attach an image, send a prompt, watch the answer stream in, then
// the zero-shot classify view of a dual encoder. Screenshots go to build/ as artifacts.
//   node tests/server/chromium.mjs --lumen build/lumen [--out build]
import path from "node:path";
import { chromium } from "playwright-core";
import { args, repo, makeTinyModels, startServer, check, summary } from "./harness.mjs";

const a = args();
const out = path.resolve(a.out || path.join(repo, "build"));
const models = makeTinyModels(a.lumen, ["llava", "clip"]);
const server = await startServer(a.lumen, ["-m", models.dirs.llava, "-m", models.dirs.clip]);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Root in CI containers: Chromium's sandbox needs user namespaces that are not there.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 760 } });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(server.url + "/");
  await page.waitForSelector("#model option", { state: "attached" });
  const options = await page.$$eval("#model option", (os) => os.map((o) => o.value));
  check(options.includes("tiny-llava") && options.includes("tiny-clip"), "model list: " + options);
  await page.selectOption("#model", "tiny-llava");

  await page.setInputFiles("#image-input", path.join(repo, "data/images/example.jpg"));
  await page.waitForSelector("#preview:not([hidden])");
  await page.fill("#max-tokens", "40");
  await page.fill("#prompt", "What is in this picture?");
  // Record every text the answer shows while it streams.
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => {
      const a = document.querySelector(".msg.assistant .text");
      if (a) window.__seen.push(a.textContent);
    }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
  });
  await page.click("#send");
  await page.waitForSelector(".msg.assistant.done", { timeout: 60000 });
  const answer = await page.textContent(".msg.assistant .text");
  const seen = await page.evaluate(() => window.__seen.filter((s) => s.length > 0));
  const distinct = new Set(seen).size;
  check(answer.length > 0, "an answer appeared");
  check(!(await page.$(".msg.assistant.error")), "no error shown: " + answer);
  check(distinct >= 2, `the answer streamed in (${distinct} distinct partial texts)`);
  check(seen.length === 0 || answer.startsWith(seen[0]), "partial texts grow into the final one");
  check((await page.$$(".msg.user img")).length === 1, "the user message shows the image");
  await page.screenshot({ path: path.join(out, "server-chat.png"), fullPage: true });

  // Second turn: the history (with the image) goes back to the server.
  await page.fill("#prompt", "Tell me more.");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelectorAll(".msg.assistant.done").length === 2, null, { timeout: 60000 });
  check(!(await page.$(".msg.assistant.error")), "second turn without error");

  // Zero-shot classify with the dual encoder.
  await page.selectOption("#model", "tiny-clip");
  await page.waitForSelector("#classify-view:not([hidden])");
  await page.setInputFiles("#image-input", path.join(repo, "data/images/example.jpg"));
  await page.waitForSelector("#preview:not([hidden])");
  await page.fill("#labels", "a cat\na dog\na bird");
  await page.click("#classify");
  await page.waitForSelector(".bar-row");
  const rows = await page.$$eval(".bar-row", (rs) => rs.map((r) => r.lastChild.textContent));
  const total = rows.reduce((s, t) => s + parseFloat(t), 0);
  check(rows.length === 3, "three probability bars");
  check(Math.abs(total - 100) < 0.5, "probabilities sum to 100%: " + total);
  await page.screenshot({ path: path.join(out, "server-classify.png"), fullPage: true });
  check(consoleErrors.length === 0, "no page errors: " + consoleErrors.join("; "));
  console.log("screenshots: " + path.join(out, "server-chat.png") + ", " + path.join(out, "server-classify.png"));
} catch (e) {
  check(false, "unexpected exception: " + (e.stack || e));
} finally {
  await browser.close();
  await server.stop();
  models.cleanup();
}
process.exit(summary("chromium"));
