// The web page at / driven in real headless Chromium (Debian's /usr/bin/chromium through
// playwright-core): load it, attach an image, send a prompt, watch the answer stream in, then
// the zero-shot classify view of a dual encoder, then grounding: boxes of a KOSMOS-2 answer
// drawn over the image, and the page's drawing function on a known grounding object, both
// checked against the entities' pixel boxes. Screenshots go to build/ as artifacts.
//   node tests/server/chromium.mjs --lumen build/lumen [--out build]
import path from "node:path";
import { chromium } from "playwright-core";
import { args, repo, makeTinyModels, startServer, imageDataUri, check, summary } from "./harness.mjs";

const a = args();
const out = path.resolve(a.out || path.join(repo, "build"));
const models = makeTinyModels(a.lumen, ["llava", "clip", "kosmos2"]);
const server = await startServer(a.lumen, ["-m", models.dirs.llava, "-m", models.dirs.clip, "-m", models.dirs.kosmos2]);

// In the page: where the overlay of one message put its boxes and points, in pixels from the
// displayed image's top-left corner, and the displayed image's size.
function measureOverlay(selector) {
  return (async () => {
    const holder = document.querySelector(selector);
    const img = holder && holder.querySelector(".gwrap img");
    if (!img) return null;
    await img.decode();
    const ir = img.getBoundingClientRect();
    const boxes = [...holder.querySelectorAll(".gbox")].map((b) => {
      const r = b.getBoundingClientRect();
      return { entity: +b.dataset.entity, x: r.left - ir.left, y: r.top - ir.top, w: r.width, h: r.height,
               color: getComputedStyle(b).borderTopColor, label: b.querySelector(".glabel").textContent };
    });
    const points = [...holder.querySelectorAll(".gpoint")].map((p) => {
      const r = p.getBoundingClientRect();
      return { entity: +p.dataset.entity, x: r.left + r.width / 2 - ir.left, y: r.top + r.height / 2 - ir.top };
    });
    return { width: ir.width, height: ir.height, boxes, points, grounding: holder.grounding || null };
  })();
}

// Each drawn box sits where its entity's pixel box lands on the displayed image.
function checkBoxes(m, g, what) {
  const scale = m.width / g.image.width;
  check(Math.abs(m.height / g.image.height - scale) < 0.01, `${what}: the image keeps its aspect ratio`);
  let n = 0;
  g.entities.forEach((e, i) => {
    const drawn = m.boxes.filter((b) => b.entity === i);
    check(drawn.length === e.boxes.length, `${what}: entity ${i} has ${drawn.length} boxes drawn, ${e.boxes.length} given`);
    e.boxes.forEach(([x0, y0, x1, y1], k) => {
      const b = drawn[k];
      if (!b) return;
      const err = Math.max(Math.abs(b.x - x0 * scale), Math.abs(b.y - y0 * scale), Math.abs(b.w - (x1 - x0) * scale),
                           Math.abs(b.h - (y1 - y0) * scale));
      check(err < 1.5, `${what}: box ${i}.${k} off by ${err.toFixed(2)} px`);
      check(b.label === e.phrase, `${what}: box ${i}.${k} label ${JSON.stringify(b.label)}`);
      n++;
    });
    const pts = m.points.filter((p) => p.entity === i);
    e.points.forEach(([x, y], k) => {
      const p = pts[k];
      check(p && Math.abs(p.x - x * scale) < 1.5 && Math.abs(p.y - y * scale) < 1.5, `${what}: point ${i}.${k} placed`);
    });
  });
  return n;
}
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
  const llavaGrounding = await page.evaluate(() => document.querySelector(".msg.assistant").grounding);
  check(llavaGrounding && llavaGrounding.format === "llava_1_5" && Array.isArray(llavaGrounding.entities),
        "the LLaVA answer carried a grounding field to the page");
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

  // Grounding, from a real response: KOSMOS-2's answer is the processed prompt and its
  // continuation, so a referring expression written with its box in the prompt comes back as
  // a known entity whatever the random weights add.
  await page.selectOption("#model", "tiny-kosmos2");
  await page.waitForSelector("#chat-view:not([hidden])");
  await page.click("#reset");
  await page.setInputFiles("#image-input", path.join(repo, "data/images/example.jpg"));
  await page.waitForSelector("#preview:not([hidden])");
  await page.fill("#max-tokens", "6");
  await page.fill("#prompt", "<grounding><phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object> is");
  await page.click("#send");
  await page.waitForSelector(".msg.assistant.done", { timeout: 60000 });
  check(!(await page.$(".msg.assistant.error")), "KOSMOS-2 answer without error");
  const real = await page.evaluate(measureOverlay, ".msg.assistant.done");
  const rg = real && real.grounding;
  check(rg && rg.format === "kosmos2" && rg.image && rg.image.index === 0, "the answer carried a kosmos2 grounding field");
  check(rg && rg.entities.length >= 1 && rg.entities[0].phrase === "a snowman", "the prompt's entity came back");
  if (rg) check(checkBoxes(real, rg, "KOSMOS-2 answer") >= 1, "the answer's boxes are drawn");

  // Grounding, the drawing function on a known object: two entities, three boxes, a point.
  const known = await page.evaluate(async (src) => {
    const img = new Image();
    img.src = src;
    await img.decode();
    const W = img.naturalWidth, H = img.naturalHeight;
    const g = { format: "llava_1_5", image: { index: 0, width: W, height: H }, text: "A cat and two dogs.", warnings: [],
      entities: [
        { phrase: "A cat", span: [0, 5], boxes: [[0.1 * W, 0.2 * H, 0.45 * W, 0.7 * H]], points: [] },
        { phrase: "two dogs", span: [10, 18], boxes: [[0.5 * W, 0.02 * H, 0.7 * W, 0.4 * H], [0.72 * W, 0.5 * H, 0.98 * W, 0.95 * H]],
          points: [[0.3 * W, 0.85 * H]] },
      ] };
    const holder = document.createElement("div");
    holder.className = "msg assistant";
    holder.id = "known-grounding";
    holder.textContent = "(drawing test) " + g.text;
    document.getElementById("messages").appendChild(holder);
    drawGrounding(holder, src, g);
    holder.grounding = g;
    return g;
  }, imageDataUri());
  const drawn = await page.evaluate(measureOverlay, "#known-grounding");
  check(drawn && checkBoxes(drawn, known, "known grounding") === 3, "three known boxes drawn");
  check(drawn && drawn.points.length === 1, "one point drawn");
  check(drawn && Math.abs(drawn.width - known.image.width) > 1, `the image is shown scaled (${drawn && drawn.width} of ${known.image.width} px)`);
  const colors = new Set((drawn ? drawn.boxes : []).map((b) => b.entity + " " + b.color));
  const byEntity = new Set((drawn ? drawn.boxes : []).map((b) => b.color));
  check(colors.size === 2 && byEntity.size === 2, "one colour per entity, distinct: " + [...byEntity].join(", "));
  await page.locator("#known-grounding").scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(out, "server-grounding.png"), fullPage: true });

  check(consoleErrors.length === 0, "no page errors: " + consoleErrors.join("; "));
  console.log("screenshots: " + ["server-chat.png", "server-classify.png", "server-grounding.png"].map((f) => path.join(out, f)).join(", "));
} catch (e) {
  check(false, "unexpected exception: " + (e.stack || e));
} finally {
  await browser.close();
  await server.stop();
  models.cleanup();
}
process.exit(summary("chromium"));
