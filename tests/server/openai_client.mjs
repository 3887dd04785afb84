// lumen serve through the official `openai` npm client: chat with an image (data URI),
// streaming, seeded sampling, embeddings (float and base64, text and image inputs), lumen's
// grounding extension (request "lumen" object, response "lumen.grounding") passing through the
// SDK, and the SDK's typed errors for a bad key (401), an unknown model (404) and a bad
// request (400).
//   node tests/server/openai_client.mjs --lumen build/lumen
import OpenAI from "openai";
import { args, makeTinyModels, startServer, imageDataUri, check, summary } from "./harness.mjs";

const { lumen } = args();
const models = makeTinyModels(lumen, ["llava", "clip"]);
const server = await startServer(lumen, ["-m", models.dirs.llava, "-m", models.dirs.clip, "--api-key", "test-key", "--parallel", "2"]);
const client = new OpenAI({ apiKey: "test-key", baseURL: server.url + "/v1", maxRetries: 0 });
const llava = "tiny-llava", clip = "tiny-clip";
const image = imageDataUri();

async function expectError(fn, Type, status, what) {
  try {
    await fn();
    check(false, what + ": no error");
  } catch (e) {
    check(e instanceof Type, `${what}: ${e.constructor.name} is not ${Type.name}`);
    check(e.status === status, `${what}: status ${e.status}, want ${status}`);
    check(typeof e.message === "string" && e.message.length > 0, what + ": error message");
    return e;
  }
}

try {
  const list = await client.models.list();
  const ids = list.data.map((m) => m.id).sort();
  check(JSON.stringify(ids) === JSON.stringify([clip, llava]), "models.list: " + ids);

  const messages = [{ role: "user", content: [
    { type: "image_url", image_url: { url: image } },
    { type: "text", text: "What is in this picture?" },
  ] }];
  const r = await client.chat.completions.create({ model: llava, messages, max_tokens: 8, temperature: 0 });
  check(r.object === "chat.completion", "chat object");
  check(r.model === llava, "chat model");
  check(r.choices.length === 1 && r.choices[0].message.role === "assistant", "one assistant choice");
  const text = r.choices[0].message.content;
  check(typeof text === "string", "chat content is a string");
  check(["stop", "length"].includes(r.choices[0].finish_reason), "finish_reason " + r.choices[0].finish_reason);
  check(r.usage.prompt_tokens > 16, "prompt tokens include the image's 16 positions: " + r.usage.prompt_tokens);
  check(r.usage.completion_tokens <= 8 && r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens, "usage adds up");

  // Streaming gives the same greedy answer, in chunks, with usage at the end.
  const stream = await client.chat.completions.create({ model: llava, messages, max_tokens: 8, temperature: 0, stream: true,
    stream_options: { include_usage: true } });
  let streamed = "", finish = null, usage = null, chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    check(chunk.object === "chat.completion.chunk", "chunk object");
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.content) streamed += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  check(streamed === text, `streamed text ${JSON.stringify(streamed)} equals non-streamed ${JSON.stringify(text)}`);
  check(finish === r.choices[0].finish_reason, "stream finish_reason");
  check(chunks >= 3, "several chunks: " + chunks);
  check(usage && usage.completion_tokens === r.usage.completion_tokens, "stream usage");

  // lumen's grounding extension rides along: the SDK keeps unknown fields both ways.
  const g = r.lumen && r.lumen.grounding;
  check(g && g.format === "llava_1_5" && g.image && g.image.index === 0 && g.image.width > 0, "response carries lumen.grounding");
  check(g && g.text !== undefined && Array.isArray(g.entities) && Array.isArray(g.warnings), "grounding shape");
  const q = await client.chat.completions.create({ model: llava, messages, max_tokens: 4, lumen: { box_format: "qwen_vl" } });
  check(q.lumen && q.lumen.grounding.format === "qwen_vl", "request's lumen.box_format reaches the server");
  const off = await client.chat.completions.create({ model: llava, messages, max_tokens: 4, lumen: { box_format: "none" } });
  check(off.lumen === undefined, "box_format none: no extension object");
  let streamedGrounding = null;
  for await (const chunk of await client.chat.completions.create({ model: llava, messages, max_tokens: 8, temperature: 0, stream: true })) {
    if (chunk.lumen) streamedGrounding = chunk.lumen.grounding;
  }
  check(JSON.stringify(streamedGrounding) === JSON.stringify(g), "the stream's finishing chunk carries the same grounding");

  // Multi-turn chat with the same image, sampled with a seed: same seed, same text.
  const turn2 = [...messages, { role: "assistant", content: text }, { role: "user", content: "And the colours?" }];
  const s1 = await client.chat.completions.create({ model: llava, messages: turn2, max_tokens: 6, temperature: 1, seed: 11 });
  const s2 = await client.chat.completions.create({ model: llava, messages: turn2, max_tokens: 6, temperature: 1, seed: 11 });
  check(s1.choices[0].message.content === s2.choices[0].message.content, "seeded sampling repeats");
  const stop = await client.chat.completions.create({ model: llava, messages: [{ role: "user", content: "Hi" }], max_tokens: 5, stop: ["\n", "zzz"] });
  check(stop.choices.length === 1, "stop list accepted");

  // Embeddings: the SDK asks for base64 by default and decodes it; float explicitly too.
  const e1 = await client.embeddings.create({ model: clip, input: ["a cat", "a dog", image] });
  check(e1.data.length === 3 && e1.data.every((d, i) => d.index === i), "three embeddings in order");
  const dim = e1.data[0].embedding.length;
  check(dim > 0 && e1.data.every((d) => d.embedding.length === dim), "same size: " + dim);
  const norm = Math.sqrt(e1.data[2].embedding.reduce((s, v) => s + v * v, 0));
  check(Math.abs(norm - 1) < 1e-4, "image embedding is L2-normalised: " + norm);
  const e2 = await client.embeddings.create({ model: clip, input: "a cat", encoding_format: "float" });
  const maxDiff = Math.max(...e2.data[0].embedding.map((v, i) => Math.abs(v - e1.data[0].embedding[i])));
  check(maxDiff < 1e-6, "float and base64 encodings agree: " + maxDiff);
  check(e2.usage.prompt_tokens > 0, "embedding usage");

  // Errors arrive as the SDK's typed errors.
  const bad = new OpenAI({ apiKey: "wrong", baseURL: server.url + "/v1", maxRetries: 0 });
  const ae = await expectError(() => bad.models.list(), OpenAI.AuthenticationError, 401, "bad key");
  check(ae && ae.code === "invalid_api_key", "bad key code");
  const nf = await expectError(() => client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "hi" }] }),
    OpenAI.NotFoundError, 404, "unknown model");
  check(nf && nf.code === "model_not_found" && nf.param === "model", "unknown model code/param");
  const br = await expectError(() => client.chat.completions.create({ model: llava, messages: [{ role: "user", content: "hi" }], n: 2 }),
    OpenAI.BadRequestError, 400, "n=2");
  check(br && br.param === "n", "n=2 param");
  const bf = await expectError(() => client.chat.completions.create({ model: llava, messages: [{ role: "user", content: "hi" }], lumen: { box_format: "hexagons" } }),
    OpenAI.BadRequestError, 400, "unknown box_format");
  check(bf && bf.param === "lumen.box_format" && bf.message.includes("hexagons"), "unknown box_format names the field and value");
  await expectError(() => client.chat.completions.create({ model: llava, messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,!!!" } }] }] }),
    OpenAI.BadRequestError, 400, "bad base64");
  await expectError(() => client.embeddings.create({ model: llava, input: "x" }), OpenAI.BadRequestError, 400, "chat model for embeddings");
  // Errors inside a stream (the SDK raises them from the iterator) do not apply here: a bad
  // request is refused before the stream starts, with its status.
  await expectError(async () => {
    const s = await client.chat.completions.create({ model: llava, messages: [{ role: "user", content: "hi" }], max_tokens: 100000, stream: true });
    for await (const _ of s) { /* drain */ }
  }, OpenAI.BadRequestError, 400, "max_tokens over the server limit, streaming");
} catch (e) {
  check(false, "unexpected exception: " + (e.stack || e));
} finally {
  await server.stop();
  models.cleanup();
}
process.exit(summary("openai_client"));
