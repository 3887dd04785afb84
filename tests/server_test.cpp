// lumen serve: the request layer (parsing, validation, OpenAI error JSON, the grounding field),
// the scheduler (continuous batching equals separate runs, image-feature cache, cancellation,
// limits), and the HTTP server in-process on a free port against make-tiny LLaVA + CLIP +
// KOSMOS-2, with a raw client.
#include <gtest/gtest.h>
#include <httplib.h>
#include <zlib.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/sha256.h"
#include "families/family.h"
#include "grounding/draw.h"
#include "runtime/dual_encoder_session.h"
#include "runtime/grounding_session.h"
#include "runtime/image_text_session.h"
#include "runtime/scheduler.h"
#include "server/api.h"
#include "server/server.h"
#include "tests/test_util.h"
#include "vision/image_processor.h"

namespace lumen {
namespace {

using nlohmann::json;
using server::ApiError;
using testing_util::run_cli;

const std::string kImagePath = std::string(LUMEN_SOURCE_DIR) + "/data/images/example.jpg";

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string data_uri(const std::string& bytes, const std::string& mime = "image/jpeg") {
  return "data:" + mime + ";base64," + server::encode_base64(bytes.data(), bytes.size());
}

// A PNG whose header claims width x height but that carries almost no data: decoders that
// allocate from the header first would be asked for gigabytes.
std::string png_bomb(uint32_t width, uint32_t height) {
  auto be32 = [](std::string& s, uint32_t v) {
    for (int i = 3; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  auto chunk = [&](std::string& out, const std::string& type, const std::string& data) {
    be32(out, static_cast<uint32_t>(data.size()));
    const std::string td = type + data;
    out += td;
    be32(out, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(td.data()), static_cast<uInt>(td.size()))));
  };
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  be32(ihdr, width);
  be32(ihdr, height);
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, deflate, no filter, no interlace
  chunk(png, "IHDR", ihdr);
  chunk(png, "IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8));
  chunk(png, "IEND", "");
  return png;
}

template <typename F>
ApiError expect_api_error(F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError was thrown";
  return ApiError(0, "", "");
}

json chat_body(const json& content, const json& extra = json::object()) {
  json b = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", content}}}}};
  b.update(extra);
  return b;
}

// ---- request layer ----

TEST(ServerApi, Sha256MatchesFipsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // 56 bytes: the padding needs a second block.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(ServerApi, Base64RoundTripsAndRejectsGarbage) {
  for (std::string s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"), std::string("\x00\xff\x10", 3)})
    EXPECT_EQ(server::decode_base64(server::encode_base64(s.data(), s.size()), "x"), s);
  EXPECT_EQ(server::encode_base64("hello", 5), "aGVsbG8=");
  EXPECT_EQ(server::decode_base64("aGVsbG8", "x"), "hello");  // padding optional
  ApiError e = expect_api_error([] { server::decode_base64("aGV$bG8=", "messages[0].content[0].image_url.url"); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "invalid_base64");
  EXPECT_EQ(e.param, "messages[0].content[0].image_url.url");
  EXPECT_NE(std::string(e.what()).find("offset 3"), std::string::npos) << e.what();
  EXPECT_EQ(expect_api_error([] { server::decode_base64("a", "x"); }).code, "invalid_base64");
}

TEST(ServerApi, ErrorBodyHasOpenAiShape) {
  json j = server::error_body(ApiError(404, "no model", "invalid_request_error", "model", "model_not_found"));
  EXPECT_EQ(j, json::parse(R"({"error":{"message":"no model","type":"invalid_request_error","param":"model","code":"model_not_found"}})"));
  json k = server::error_body(ApiError(500, "boom", "server_error"));
  EXPECT_TRUE(k["error"]["param"].is_null());
  EXPECT_TRUE(k["error"]["code"].is_null());
}

TEST(ServerApi, MalformedJsonAndNonObjectsAre400) {
  ApiError e = expect_api_error([] { server::parse_json_object("{\"model\": "); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "invalid_json");
  EXPECT_EQ(expect_api_error([] { server::parse_json_object("[1,2]"); }).code, "invalid_json");
  EXPECT_EQ(expect_api_error([] { server::parse_json_object(""); }).code, "invalid_json");
  EXPECT_EQ(server::parse_json_object(R"({"a": 1})")["a"], 1);
}

TEST(ServerApi, ChatRequestParsesContentPartsAndSampling) {
  server::Limits lim;
  const std::string png = read_file(kImagePath);
  json body = chat_body(json::array({{{"type", "image_url"}, {"image_url", {{"url", data_uri(png)}}}},
                                     {{"type", "text"}, {"text", "What is it?"}}}),
                        {{"max_completion_tokens", 7}, {"temperature", 0.5}, {"top_p", 0.9}, {"seed", 3},
                         {"stop", {"a", "b"}}, {"stream", true}, {"stream_options", {{"include_usage", true}}},
                         {"n", 1}, {"presence_penalty", nullptr}});
  server::ChatRequest r = server::parse_chat_request(body, lim);
  EXPECT_EQ(r.model, "m");
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0], png);
  EXPECT_EQ(r.messages[0]["content"][0], nlohmann::ordered_json({{"type", "image"}}));
  EXPECT_EQ(r.messages[0]["content"][1]["text"], "What is it?");
  EXPECT_EQ(*r.max_tokens, 7);
  EXPECT_FLOAT_EQ(*r.temperature, 0.5f);
  EXPECT_FLOAT_EQ(*r.top_p, 0.9f);
  EXPECT_EQ(*r.seed, 3u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  // A plain string content and a single stop string.
  server::ChatRequest s = server::parse_chat_request(chat_body("hi", {{"stop", "x"}, {"max_tokens", 3}}), lim);
  EXPECT_EQ(s.messages[0]["content"], "hi");
  EXPECT_EQ(s.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(*s.max_tokens, 3);
}

TEST(ServerApi, ChatRequestErrorsNameTheField) {
  server::Limits lim;
  lim.max_tokens = 100;
  struct Case {
    json body;
    std::string param, code;
  };
  const std::vector<Case> cases = {
      {json{{"messages", json::array()}}, "model", "missing_required_parameter"},
      {json{{"model", 5}, {"messages", json::array()}}, "model", "invalid_type"},
      {json{{"model", "m"}}, "messages", "missing_required_parameter"},
      {json{{"model", "m"}, {"messages", "hi"}}, "messages", "invalid_type"},
      {json{{"model", "m"}, {"messages", json::array()}}, "messages", "invalid_value"},
      {json{{"model", "m"}, {"messages", {{{"role", "robot"}, {"content", "x"}}}}}, "messages[0].role", "invalid_value"},
      {json{{"model", "m"}, {"messages", {{{"content", "x"}}}}}, "messages[0].role", "invalid_type"},
      {chat_body(42), "messages[0].content", "invalid_type"},
      {chat_body(json::array({{{"type", "audio"}}})), "messages[0].content[0].type", "invalid_value"},
      {chat_body(json::array({{{"type", "text"}, {"text", 1}}})), "messages[0].content[0].text", "invalid_type"},
      {chat_body(json::array({{{"type", "image_url"}, {"image_url", 7}}})), "messages[0].content[0].image_url",
       "invalid_type"},
      {chat_body(json::array({{{"type", "image_url"}, {"image_url", {{"url", "data:image/png;base64,@@@@"}}}}})),
       "messages[0].content[0].image_url.url", "invalid_base64"},
      {chat_body(json::array({{{"type", "image_url"}, {"image_url", {{"url", "https://example.com/a.png"}}}}})),
       "messages[0].content[0].image_url.url", "unsupported_image_url"},
      {chat_body(json::array({{{"type", "image_url"}, {"image_url", {{"url", "/etc/passwd"}}}}})),
       "messages[0].content[0].image_url.url", "invalid_image_url"},
      {chat_body("x", {{"max_tokens", 0}}), "max_tokens", "invalid_value"},
      {chat_body("x", {{"max_tokens", 101}}), "max_tokens", "invalid_value"},
      {chat_body("x", {{"max_tokens", "5"}}), "max_tokens", "invalid_type"},
      {chat_body("x", {{"max_tokens", 1.5}}), "max_tokens", "invalid_type"},
      {chat_body("x", {{"temperature", "hot"}}), "temperature", "invalid_type"},
      {chat_body("x", {{"temperature", 3}}), "temperature", "invalid_value"},
      {chat_body("x", {{"top_p", 0}}), "top_p", "invalid_value"},
      {chat_body("x", {{"n", 2}}), "n", "unsupported_value"},
      {chat_body("x", {{"stop", {"a", "b", "c", "d", "e"}}}), "stop", "invalid_value"},
      {chat_body("x", {{"stop", {1}}}), "stop", "invalid_type"},
      {chat_body("x", {{"stream", "yes"}}), "stream", "invalid_type"},
      {chat_body("x", {{"seed", 18446744073709551615ull}}), "seed", "invalid_value"},
  };
  for (const auto& c : cases) {
    ApiError e = expect_api_error([&] { server::parse_chat_request(c.body, lim); });
    EXPECT_EQ(e.status, 400) << c.body.dump();
    EXPECT_EQ(e.param, c.param) << c.body.dump() << ": " << e.what();
    EXPECT_EQ(e.code, c.code) << c.body.dump() << ": " << e.what();
    EXPECT_EQ(e.type, "invalid_request_error");
  }
}

TEST(ServerApi, ImageLimitsBombsAndLocalFiles) {
  server::Limits lim;
  lim.max_image_pixels = 1 << 20;
  // A PNG that declares 100000 x 100000 pixels is refused from its header.
  const std::string bomb = png_bomb(100000, 100000);
  ApiError e = expect_api_error([&] { server::decode_request_image(bomb, lim, "input"); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "invalid_image");
  EXPECT_NE(std::string(e.what()).find("pixels"), std::string::npos) << e.what();
  // Bytes that are no image at all.
  EXPECT_EQ(expect_api_error([&] { server::decode_request_image("hello", lim, "input"); }).code, "invalid_image");
  // Over the byte limit: 413 before decoding.
  lim.max_image_bytes = 100;
  ApiError big = expect_api_error([&] { server::load_image_ref(data_uri(std::string(1000, 'x')), lim, "image"); });
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(big.code, "image_too_large");
  // Local files only with the flag.
  lim.max_image_bytes = 16u << 20;
  EXPECT_EQ(expect_api_error([&] { server::load_image_ref(kImagePath, lim, "image"); }).code, "invalid_image_url");
  lim.allow_local_files = true;
  EXPECT_EQ(server::load_image_ref("file://" + kImagePath, lim, "image"), read_file(kImagePath));
  EXPECT_EQ(server::decode_request_image(read_file(kImagePath), lim, "image").width > 0, true);
}

TEST(ServerApi, EmbeddingAndClassifyRequests) {
  server::Limits lim;
  server::EmbeddingRequest r = server::parse_embedding_request(
      json{{"model", "clip"}, {"input", {"a cat", "data:image/png;base64,AAAA"}}, {"encoding_format", "base64"}}, lim);
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_FALSE(r.inputs[0].is_image);
  EXPECT_TRUE(r.inputs[1].is_image);
  EXPECT_TRUE(r.base64);
  EXPECT_EQ(server::parse_embedding_request(json{{"model", "c"}, {"input", "one"}}, lim).inputs.size(), 1u);
  EXPECT_EQ(expect_api_error([&] { server::parse_embedding_request(json{{"model", "c"}, {"input", {1, 2}}}, lim); }).param,
            "input[0]");
  EXPECT_EQ(expect_api_error([&] {
              server::parse_embedding_request(json{{"model", "c"}, {"input", "x"}, {"encoding_format", "int8"}}, lim);
            }).param,
            "encoding_format");
  EXPECT_EQ(expect_api_error([&] { server::parse_embedding_request(json{{"model", "c"}, {"input", json::array()}}, lim); }).param,
            "input");
  server::ClassifyRequest c =
      server::parse_classify_request(json{{"model", "c"}, {"image", "data:x"}, {"labels", {"cat", "dog"}}}, lim);
  EXPECT_EQ(c.labels.size(), 2u);
  EXPECT_EQ(c.prompt_template, "a photo of a {}");
  EXPECT_EQ(expect_api_error([&] {
              server::parse_classify_request(json{{"model", "c"}, {"image", "d"}, {"labels", {"a"}}, {"template", "no"}}, lim);
            }).param,
            "template");
}

TEST(ServerApi, GroundingRequestExtension) {
  server::Limits lim;
  server::ChatRequest r =
      server::parse_chat_request(chat_body("x", {{"lumen", {{"box_format", "qwen_vl"}, {"box_geometry", "identity"}}}}), lim);
  ASSERT_TRUE(r.grounding.format);
  EXPECT_EQ(*r.grounding.format, grounding::Format::QwenVL);
  EXPECT_FALSE(r.grounding.off);
  ASSERT_TRUE(r.grounding.geometry);
  EXPECT_EQ(*r.grounding.geometry, GeometryMode::Identity);
  EXPECT_TRUE(server::parse_chat_request(chat_body("x", {{"lumen", {{"box_format", "none"}}}}), lim).grounding.off);
  const server::ChatRequest plain = server::parse_chat_request(chat_body("x"), lim);
  EXPECT_FALSE(plain.grounding.format || plain.grounding.off || plain.grounding.geometry);
  // Unknown values are 400s naming the field and the value.
  ApiError e = expect_api_error([&] { server::parse_chat_request(chat_body("x", {{"lumen", {{"box_format", "boxy"}}}}), lim); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "lumen.box_format");
  EXPECT_EQ(e.code, "invalid_value");
  EXPECT_NE(std::string(e.what()).find("'boxy'"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("qwen_vl"), std::string::npos) << e.what();  // lists the known ones
  EXPECT_EQ(expect_api_error([&] {
              server::parse_chat_request(chat_body("x", {{"lumen", {{"box_geometry", "tilted"}}}}), lim);
            }).param,
            "lumen.box_geometry");
  EXPECT_EQ(expect_api_error([&] { server::parse_chat_request(chat_body("x", {{"lumen", {{"box_format", 3}}}}), lim); }).code,
            "invalid_type");
  EXPECT_EQ(expect_api_error([&] { server::parse_chat_request(chat_body("x", {{"lumen", "qwen_vl"}}), lim); }).param, "lumen");
  ApiError unknown =
      expect_api_error([&] { server::parse_chat_request(chat_body("x", {{"lumen", {{"boxformat", "kosmos2"}}}}), lim); });
  EXPECT_EQ(unknown.param, "lumen.boxformat");
  EXPECT_EQ(unknown.code, "unknown_parameter");
}

TEST(ServerApi, GroundingFieldOfAKnownAnswer) {
  // A LLaVA-1.5 answer with one box and one point, about a 200 x 100 image seen whole.
  const std::string answer = "A cat [0.1, 0.2, 0.5, 0.6] and its nose [0.25, 0.5].";
  server::GroundingImage image;
  image.index = 1;
  image.geometry = grounding::ImageGeometry::identity(200, 100);
  nlohmann::ordered_json g = server::grounding_field(grounding::Format::Llava15, answer, image);
  EXPECT_EQ(g["format"], "llava_1_5");
  EXPECT_EQ(g["image"], nlohmann::ordered_json({{"index", 1}, {"width", 200}, {"height", 100}}));
  EXPECT_EQ(g["text"], "A cat and its nose.");
  ASSERT_EQ(g["entities"].size(), 2u);
  const auto& cat = g["entities"][0];
  EXPECT_EQ(cat["phrase"], "A cat");
  EXPECT_EQ(cat["span"], nlohmann::ordered_json({0, 5}));
  ASSERT_EQ(cat["boxes"].size(), 1u);
  const std::vector<double> px = cat["boxes"][0].get<std::vector<double>>();
  const std::vector<double> want_px = {20, 20, 100, 60};
  for (size_t k = 0; k < 4; ++k) EXPECT_NEAR(px[k], want_px[k], 1e-9) << k;
  EXPECT_EQ(cat["norm_boxes"][0].get<std::vector<double>>(), (std::vector<double>{0.1, 0.2, 0.5, 0.6}));
  EXPECT_TRUE(cat["points"].empty());
  const auto& nose = g["entities"][1];
  EXPECT_EQ(nose["phrase"], "and its nose");  // the text since the previous entity, as the parser reads it
  ASSERT_EQ(nose["points"].size(), 1u);
  EXPECT_NEAR(nose["points"][0][0].get<double>(), 50, 1e-9);
  EXPECT_NEAR(nose["points"][0][1].get<double>(), 50, 1e-9);
  EXPECT_TRUE(g["warnings"].empty());
  // The same keys, in order, as `lumen run --json` writes plus "format" and "image".
  std::vector<std::string> keys;
  for (const auto& [k, v] : g.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"format", "image", "text", "entities", "warnings"}));
  // Without an image: no pixel coordinates, the normalised ones stay.
  nlohmann::ordered_json n = server::grounding_field(grounding::Format::Llava15, answer, std::nullopt);
  EXPECT_TRUE(n["image"].is_null());
  EXPECT_TRUE(n["entities"][0]["boxes"].empty());
  EXPECT_EQ(n["entities"][0]["norm_boxes"], cat["norm_boxes"]);
  EXPECT_TRUE(n["entities"][1]["points"].empty());
  EXPECT_EQ(n["entities"][1]["norm_points"].size(), 1u);
  // Text without boxes: the field is there with no entities.
  nlohmann::ordered_json none = server::grounding_field(grounding::Format::Llava15, std::string_view("Just a cat."), image);
  EXPECT_TRUE(none["entities"].empty());
  EXPECT_EQ(none["text"], "Just a cat.");
}

// ---- scheduler ----

const std::string& tiny(const std::string& family) {
  static std::map<std::string, std::string> dirs;
  auto it = dirs.find(family);
  if (it != dirs.end()) return it->second;
  std::string dir = testing_util::temp_dir("serve_" + family);
  auto r = run_cli("make-tiny -f " + family + " -o " + dir + " --force --seed 7");
  EXPECT_EQ(r.status, 0) << r.output;
  return dirs[family] = dir;
}

GenerationRequest text_request(const VlmSession& s, const std::string& text, int64_t max_new) {
  GenerationRequest g;
  nlohmann::ordered_json msgs = {{{"role", "user"}, {"content", text}}};
  g.prompt_text = s.render_chat(msgs, true);
  g.params = s.default_params();
  g.params.max_new_tokens = max_new;
  g.params.eos_ids.clear();  // random weights: run to the length so every step is compared
  g.max_tokens_explicit = true;
  return g;
}

TEST(Scheduler, BatchedDecodeEqualsSeparateRuns) {
  VlmSession s = VlmSession::open(tiny("llava"));
  const std::vector<std::string> prompts = {"Hello there", "Describe a long and winding road in detail", "Why?"};
  const std::vector<int64_t> lengths = {9, 14, 5};  // different lengths: slots finish and free at different steps
  std::vector<std::string> expected;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest g = text_request(s, prompts[i], lengths[i]);
    expected.push_back(s.generate(s.prepare(g.prompt_text, {}), g.params).text);
  }
  SchedulerOptions o;
  o.slots = 2;  // three requests over two slots: the third joins when the first ends
  GenerationScheduler sched(s, o);
  std::vector<std::shared_ptr<GenerationJob>> jobs;
  for (size_t i = 0; i < prompts.size(); ++i) jobs.push_back(sched.submit(text_request(s, prompts[i], lengths[i])));
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i]->wait_done();
    EXPECT_EQ(jobs[i]->end(), JobEnd::Length) << jobs[i]->error();
    EXPECT_EQ(jobs[i]->text(), expected[i]) << prompts[i];
    EXPECT_EQ(jobs[i]->completion_tokens(), lengths[i]);
  }
  const SchedulerStats st = sched.stats();
  EXPECT_GT(st.batched_rows, st.batched_steps) << "no decode step carried more than one sequence";
}

// Chunked prefill: with a 4-row budget a long prompt is prefilled over several steps that also
// carry the other slot's decode rows, and every answer still equals a run on its own.
TEST(Scheduler, ChunkedPrefillInterleavesWithDecodeAndChangesNoAnswer) {
  VlmSession s = VlmSession::open(tiny("llava"));
  const std::string long_prompt =
      "Describe, in as much detail as you can manage, a long and winding road through hills, "
      "villages and forests at dawn";
  const std::vector<std::string> prompts = {"Hi", long_prompt};
  const std::vector<int64_t> lengths = {24, 6};
  std::vector<std::string> expected;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest g = text_request(s, prompts[i], lengths[i]);
    expected.push_back(s.generate(s.prepare(g.prompt_text, {}), g.params).text);
  }
  SchedulerOptions o;
  o.slots = 2;
  o.prefill_chunk = 4;
  GenerationScheduler sched(s, o);
  auto first = sched.submit(text_request(s, prompts[0], lengths[0]));
  std::string piece;
  ASSERT_TRUE(first->wait_text(&piece, std::chrono::seconds(30)));  // answering before the long prompt arrives
  auto second = sched.submit(text_request(s, prompts[1], lengths[1]));
  for (auto* job : {&first, &second}) (*job)->wait_done();
  EXPECT_EQ(first->text(), expected[0]);
  EXPECT_EQ(second->text(), expected[1]);
  EXPECT_EQ(second->completion_tokens(), lengths[1]);
  const SchedulerStats st = sched.stats();
  const int64_t prompt_rows = first->prompt_tokens() + second->prompt_tokens();
  EXPECT_EQ(st.prefill_rows, prompt_rows);
  EXPECT_GT(second->prompt_tokens(), 3 * o.prefill_chunk) << "the long prompt must need several chunks";
  EXPECT_GT(st.mixed_steps, 1) << "no step prefilled the long prompt while the first answer decoded";
}

TEST(Scheduler, ImageFeaturesAreCachedByContent) {
  VlmSession s = VlmSession::open(tiny("llava"));
  GenerationScheduler sched(s, SchedulerOptions{});
  const std::string bytes = read_file(kImagePath);
  auto request = [&] {
    GenerationRequest g;
    nlohmann::ordered_json msgs = {{{"role", "user"}, {"content", {{{"type", "image"}}, {{"type", "text"}, {"text", "Hi"}}}}}};
    g.prompt_text = s.render_chat(msgs, true);
    g.images.push_back({decode_image_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), sha256_hex(bytes)});
    g.params = s.default_params();
    g.params.max_new_tokens = 3;
    return g;
  };
  auto a = sched.submit(request());
  a->wait_done();
  auto b = sched.submit(request());
  b->wait_done();
  EXPECT_EQ(a->cached_images(), 0);
  EXPECT_EQ(b->cached_images(), 1);
  EXPECT_EQ(a->text(), b->text());
  EXPECT_EQ(sched.stats().image_cache_hits, 1);
  EXPECT_EQ(sched.stats().image_cache_misses, 1);
}

TEST(Scheduler, CancelTimeoutQueueLimitAndBadPrompt) {
  VlmSession s = VlmSession::open(tiny("llava"));
  SchedulerOptions o;
  o.slots = 1;
  o.max_queue = 0;
  GenerationScheduler sched(s, o);
  auto long_job = sched.submit(text_request(s, "Go on", 400));
  // One slot, no queue: a second request is refused while the first runs.
  EXPECT_THROW(sched.submit(text_request(s, "x", 2)), QueueFull);
  long_job->cancel();
  long_job->wait_done();
  EXPECT_EQ(long_job->end(), JobEnd::Cancelled);
  EXPECT_LT(long_job->completion_tokens(), 400);
  // The slot is free as soon as the job has ended: the next request is not refused.
  // A deadline already passed.
  GenerationRequest late = text_request(s, "late", 5);
  late.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  auto t = sched.submit(std::move(late));
  t->wait_done();
  EXPECT_EQ(t->end(), JobEnd::Timeout);
  // Image markers typed into the text, without images: the user's fault, not the server's.
  auto bad = sched.submit(text_request(s, "look: <image>", 5));
  bad->wait_done();
  EXPECT_EQ(bad->end(), JobEnd::BadRequest);
  EXPECT_NE(bad->error().find("image marker"), std::string::npos) << bad->error();
  // Context overflow with an explicit max_tokens is an error; without, it is cut to fit.
  auto over = sched.submit(text_request(s, "x", 1 << 20));
  over->wait_done();
  EXPECT_EQ(over->end(), JobEnd::BadRequest);
  EXPECT_NE(over->error().find("context"), std::string::npos) << over->error();
}

// ---- HTTP, in-process ----

class ServerHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server::ServerOptions o;
    o.models = {tiny("llava"), tiny("clip"), tiny("kosmos2")};
    o.port = 0;
    o.parallel = 2;
    o.api_key = "sekret";
    o.limits.max_body_bytes = 1 << 20;
    o.limits.max_image_pixels = 1 << 22;
    srv_ = new server::Server(o);
    port_ = srv_->bind();
    thread_ = new std::thread([] { srv_->listen(); });
  }
  static void TearDownTestSuite() {
    srv_->shutdown();
    thread_->join();
    delete thread_;
    delete srv_;
  }
  httplib::Client client(bool with_key = true) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    if (with_key) c.set_bearer_token_auth("sekret");
    return c;
  }
  static std::string llava_id() { return std::filesystem::path(tiny("llava")).filename().string(); }
  static std::string clip_id() { return std::filesystem::path(tiny("clip")).filename().string(); }
  static std::string kosmos2_id() { return std::filesystem::path(tiny("kosmos2")).filename().string(); }
  // POSTs a chat body; the parsed response (non-streamed) or the parsed events (streamed).
  json post_chat(const json& body) {
    auto r = client().Post("/v1/chat/completions", body.dump(), "application/json");
    EXPECT_TRUE(r) << "no response";
    if (!r) return {};
    EXPECT_EQ(r->status, 200) << r->body;
    if (!body.value("stream", false)) return json::parse(r->body, nullptr, false);
    json events = json::array();
    size_t pos = 0;
    while ((pos = r->body.find("data: ", pos)) != std::string::npos) {
      const size_t end = r->body.find("\n\n", pos);
      const std::string data = r->body.substr(pos + 6, end - pos - 6);
      pos = end;
      if (data == "[DONE]") break;
      events.push_back(json::parse(data));
    }
    return events;
  }
  static json expect_error(const httplib::Result& r, int status, const std::string& code) {
    EXPECT_TRUE(r) << "no response";
    if (!r) return {};
    EXPECT_EQ(r->status, status) << r->body;
    json j = json::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.contains("error")) << r->body;
    if (!j.contains("error")) return j;
    EXPECT_EQ(j["error"]["code"], code) << r->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    return j;
  }
  static server::Server* srv_;
  static std::thread* thread_;
  static int port_;
};
server::Server* ServerHttp::srv_ = nullptr;
std::thread* ServerHttp::thread_ = nullptr;
int ServerHttp::port_ = 0;

TEST_F(ServerHttp, HealthModelsPageAndAuth) {
  auto c = client(false);
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto page = c.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<title>lumen</title>"), std::string::npos);
  expect_error(c.Get("/v1/models"), 401, "missing_api_key");
  c.set_bearer_token_auth("wrong");
  expect_error(c.Get("/v1/models"), 401, "invalid_api_key");
  auto m = client().Get("/v1/models");
  ASSERT_TRUE(m);
  json j = json::parse(m->body);
  ASSERT_EQ(j["data"].size(), 3u);
  EXPECT_EQ(j["data"][0]["id"], llava_id());
  EXPECT_EQ(j["data"][0]["lumen"]["kind"], "chat");
  EXPECT_EQ(j["data"][0]["lumen"]["box_format"], "llava_1_5");
  EXPECT_EQ(j["data"][1]["lumen"]["kind"], "embedding");
  EXPECT_TRUE(j["data"][1]["lumen"]["box_format"].is_null());
  EXPECT_EQ(j["data"][2]["id"], kosmos2_id());
  EXPECT_EQ(j["data"][2]["lumen"]["kind"], "chat");
  EXPECT_EQ(j["data"][2]["lumen"]["box_format"], "kosmos2");
  expect_error(client().Get("/v1/nothing"), 404, "not_found");
}

TEST_F(ServerHttp, ChatWithImageNonStreamingAndStreamingAgree) {
  json body = {{"model", llava_id()},
               {"messages",
                {{{"role", "user"},
                  {"content", {{{"type", "image_url"}, {"image_url", {{"url", data_uri(read_file(kImagePath))}}}},
                               {{"type", "text"}, {"text", "What is in the picture?"}}}}}}},
               {"max_tokens", 6},
               {"temperature", 0}};
  auto r = client().Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string text = j["choices"][0]["message"]["content"];
  const std::string finish = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "stop" || finish == "length") << finish;
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int64_t>(), 16);  // the image alone takes 16 positions
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int64_t>() + j["usage"]["completion_tokens"].get<int64_t>());

  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  std::string sse;
  auto s = client().Post("/v1/chat/completions", httplib::Headers{}, body.dump(), "application/json");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->status, 200) << s->body;
  EXPECT_NE(s->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  sse = s->body;
  ASSERT_GE(sse.size(), 14u);
  EXPECT_EQ(sse.substr(sse.size() - 14), "data: [DONE]\n\n");
  std::string streamed, streamed_finish;
  json usage;
  size_t pos = 0;
  while ((pos = sse.find("data: ", pos)) != std::string::npos) {
    const size_t end = sse.find("\n\n", pos);
    const std::string data = sse.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") break;
    json ev = json::parse(data);
    EXPECT_EQ(ev["object"], "chat.completion.chunk");
    if (ev.contains("usage")) usage = ev["usage"];
    if (ev["choices"].empty()) continue;
    const json& delta = ev["choices"][0]["delta"];
    if (delta.contains("content")) streamed += delta["content"].get<std::string>();
    if (!ev["choices"][0]["finish_reason"].is_null()) streamed_finish = ev["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(streamed, text);  // greedy: the same answer either way
  EXPECT_EQ(streamed_finish, finish);
  EXPECT_EQ(usage["completion_tokens"], j["usage"]["completion_tokens"]);
}

// A server on a free port for one test, over the given checkpoints; shut down when it goes.
class LocalServer {
 public:
  explicit LocalServer(std::vector<std::string> dirs) {
    server::ServerOptions o;
    o.models = std::move(dirs);
    o.port = 0;
    srv_ = std::make_unique<server::Server>(o);
    port_ = srv_->bind();
    thread_ = std::thread([this] { srv_->listen(); });
  }
  ~LocalServer() {
    srv_->shutdown();
    thread_.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60, 0);
    return c;
  }

 private:
  std::unique_ptr<server::Server> srv_;
  int port_ = 0;
  std::thread thread_;
};

// A BLIP retrieval checkpoint serves /v1/embeddings through its contrastive part: the vectors
// are the ones `lumen search` stores (DualEncoderSession on the same directory).
TEST(ServerBlip, RetrievalCheckpointServesEmbeddings) {
  const std::string dir = testing_util::temp_dir("serve_blip_retrieval");
  auto mk = run_cli("make-tiny -f blip --arch tiny-retrieval -o " + dir + " --force --seed 3");
  ASSERT_EQ(mk.status, 0) << mk.output;
  LocalServer srv({dir});
  const std::string id = std::filesystem::path(dir).filename().string();
  auto r = srv.client().Post("/v1/embeddings", json{{"model", id}, {"input", {"a cat on a mat"}}}.dump(),
                             "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const auto served = json::parse(r->body)["data"][0]["embedding"].get<std::vector<float>>();
  const Tensor want = DualEncoderSession::open(dir).embed_texts({"a cat on a mat"});
  ASSERT_EQ(static_cast<int64_t>(served.size()), want.dim(1));
  for (size_t i = 0; i < served.size(); ++i) EXPECT_NEAR(served[i], want.data<float>()[i], 1e-6) << i;
}

// BLIP captioning and VQA checkpoints answer chat requests about the last image, one request at
// a time: the answer is what the image-text session writes for the last user text, greedily.
TEST(ServerBlip, CaptionAndVqaCheckpointsAnswerChat) {
  const std::string cap = testing_util::temp_dir("serve_blip_caption"), vqa = testing_util::temp_dir("serve_blip_vqa");
  ASSERT_EQ(run_cli("make-tiny -f blip -o " + cap + " --force --seed 4").status, 0);
  ASSERT_EQ(run_cli("make-tiny -f blip --arch tiny-vqa -o " + vqa + " --force --seed 4").status, 0);
  LocalServer srv({cap, vqa});
  httplib::Client c = srv.client();
  const std::string bytes = read_file(kImagePath);
  auto ask = [&](const std::string& dir, const json& extra, const std::string& text) {
    json body = {{"model", std::filesystem::path(dir).filename().string()},
                 {"max_tokens", 6},
                 {"messages",
                  {{{"role", "user"},
                    {"content", {{{"type", "image_url"}, {"image_url", {{"url", data_uri(bytes)}}}},
                                 {{"type", "text"}, {"text", text}}}}}}}};
    body.update(extra);
    return c.Post("/v1/chat/completions", body.dump(), "application/json");
  };
  const Image img = decode_image_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  ImageTextOptions greedy;
  greedy.max_new_tokens = 6;
  for (const std::string& dir : {cap, vqa}) {
    const std::string question = "what is in the picture?";
    auto r = ask(dir, json::object(), question);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    const json j = json::parse(r->body);
    const ImageTextResult want = ImageTextSession::open(dir).generate(img, question, greedy);
    EXPECT_EQ(j["choices"][0]["message"]["content"], want.text) << dir;
    EXPECT_EQ(j["usage"]["completion_tokens"], want.new_tokens);
    EXPECT_FALSE(j.contains("lumen")) << "a captioner has no box format unless one is named";
    // Streamed: the same text in one chunk.
    auto s = ask(dir, {{"stream", true}}, question);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->status, 200);
    EXPECT_NE(s->body.find(json(want.text).dump()), std::string::npos) << s->body;
  }
  // Sampling is refused by name; a request without an image says what is missing.
  auto hot = ask(cap, {{"temperature", 0.7}}, "a photo of");
  ASSERT_TRUE(hot);
  EXPECT_EQ(hot->status, 400);
  EXPECT_NE(hot->body.find("temperature"), std::string::npos) << hot->body;
  auto no_image = c.Post("/v1/chat/completions",
                         json{{"model", std::filesystem::path(cap).filename().string()},
                              {"messages", {{{"role", "user"}, {"content", "hi"}}}}}
                             .dump(),
                         "application/json");
  ASSERT_TRUE(no_image);
  EXPECT_EQ(no_image->status, 400);
  EXPECT_NE(no_image->body.find("image_required"), std::string::npos) << no_image->body;
}

TEST_F(ServerHttp, EmbeddingsFloatAndBase64AndClassify) {
  const std::string img = data_uri(read_file(kImagePath));
  json body = {{"model", clip_id()}, {"input", {"a cat", img}}};
  auto r = client().Post("/v1/embeddings", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  ASSERT_EQ(j["data"].size(), 2u);
  const auto text_vec = j["data"][0]["embedding"].get<std::vector<float>>();
  double norm = 0;
  for (float v : text_vec) norm += double(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-4);
  body["encoding_format"] = "base64";
  auto b = client().Post("/v1/embeddings", body.dump(), "application/json");
  ASSERT_TRUE(b);
  json jb = json::parse(b->body);
  for (int i = 0; i < 2; ++i) {
    const std::string raw = server::decode_base64(jb["data"][i]["embedding"].get<std::string>(), "x");
    std::vector<float> v(raw.size() / 4);
    std::memcpy(v.data(), raw.data(), raw.size());
    EXPECT_EQ(v, j["data"][i]["embedding"].get<std::vector<float>>());
  }
  auto c = client().Post("/v1/classify", json{{"model", clip_id()}, {"image", img}, {"labels", {"cat", "dog", "car"}}}.dump(),
                         "application/json");
  ASSERT_TRUE(c);
  ASSERT_EQ(c->status, 200) << c->body;
  json jc = json::parse(c->body);
  double total = 0;
  for (auto& res : jc["results"]) total += res["probability"].get<double>();
  EXPECT_NEAR(total, 1.0, 1e-4);  // CLIP: a softmax over the labels
  EXPECT_EQ(jc["scoring"], "softmax");
  // Wrong model kind for the endpoint.
  expect_error(client().Post("/v1/embeddings", json{{"model", llava_id()}, {"input", "x"}}.dump(), "application/json"), 400,
               "model_not_supported");
}

TEST_F(ServerHttp, BadInputGetsOpenAiErrorsAndTheServerStaysUp) {
  auto c = client();
  expect_error(c.Post("/v1/chat/completions", "{not json", "application/json"), 400, "invalid_json");
  expect_error(c.Post("/v1/chat/completions", json{{"model", "nope"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}.dump(),
                      "application/json"),
               404, "model_not_found");
  expect_error(c.Post("/v1/chat/completions", json{{"model", llava_id()}, {"messages", 3}}.dump(), "application/json"), 400,
               "invalid_type");
  expect_error(c.Post("/v1/chat/completions", std::string(2 << 20, ' '), "application/json"), 413, "request_too_large");
  json bomb = {{"model", llava_id()},
               {"messages",
                {{{"role", "user"},
                  {"content", {{{"type", "image_url"}, {"image_url", {{"url", data_uri(png_bomb(60000, 60000), "image/png")}}}}}}}}}};
  json e = expect_error(c.Post("/v1/chat/completions", bomb.dump(), "application/json"), 400, "invalid_image");
  EXPECT_EQ(e["error"]["param"], "messages[0].content[0].image_url.url");
  expect_error(c.Post("/v1/embeddings", json{{"model", clip_id()}, {"input", "data:image/png;base64,!!"}}.dump(),
                      "application/json"),
               400, "invalid_base64");
  // A client that hangs up mid-stream: its sequence is cancelled, the server keeps serving.
  json body = {{"model", llava_id()}, {"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}},
               {"max_tokens", 400}, {"stream", true}};
  size_t received = 0;
  httplib::Client d("127.0.0.1", port_);
  d.set_bearer_token_auth("sekret");
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t n, uint64_t, uint64_t) {
    received += n;
    return received < 200;  // hang up after the first events
  };
  auto hung = d.send(req);
  EXPECT_FALSE(hung);
  EXPECT_GT(received, 0u);
  auto h = client(false).Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto metrics = client(false).Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("lumen_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"}"), std::string::npos);
  EXPECT_NE(metrics->body.find("lumen_request_duration_seconds_bucket{endpoint=\"/v1/chat/completions\""), std::string::npos);
  EXPECT_NE(metrics->body.find("lumen_queue_depth{model=\"" + llava_id() + "\"}"), std::string::npos);
  // The cancelled sequence leaves its slot within a few steps.
  bool idle = false;
  for (int i = 0; i < 200 && !idle; ++i) {
    auto m = client(false).Get("/metrics");
    idle = m && m->body.find("lumen_active_sequences{model=\"" + llava_id() + "\"} 0") != std::string::npos;
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(idle) << "the hung-up stream still holds its slot";
  auto after = client(false).Get("/metrics");
  ASSERT_TRUE(after);
  EXPECT_NE(after->body.find("lumen_cancelled_total{model=\"" + llava_id() + "\"} 1"), std::string::npos) << after->body;
}

// The grounding field of a chat VLM: the answer parsed in LLaVA-1.5's format, boxes in the
// pixels of the conversation's last image through the processor's geometry. The tiny model
// writes random text, so the field is checked against the parse of whatever it wrote.
TEST_F(ServerHttp, ChatVlmAnswersCarryTheGroundingField) {
  const std::string jpeg = read_file(kImagePath);
  // A second image of another size, last in the conversation: the boxes refer to it.
  Image small;
  small.width = 64;
  small.height = 48;
  small.rgb.assign(64 * 48 * 3, 200);
  const std::string png_path = testing_util::temp_dir("serve_ground") + "/small.png";
  grounding::write_png(png_path, small);
  const std::string png = read_file(png_path);
  auto image_part = [](const std::string& uri) { return json{{"type", "image_url"}, {"image_url", {{"url", uri}}}}; };
  json body = {{"model", llava_id()},
               {"messages",
                {{{"role", "user"}, {"content", {image_part(data_uri(jpeg)), {{"type", "text"}, {"text", "Hi"}}}}},
                 {{"role", "assistant"}, {"content", "Hello."}},
                 {{"role", "user"},
                  {"content", {image_part(data_uri(png, "image/png")), {{"type", "text"}, {"text", "Where is the cat?"}}}}}}},
               {"max_tokens", 6},
               {"temperature", 0}};
  json j = post_chat(body);
  ASSERT_TRUE(j.contains("lumen")) << j.dump();
  const json g = j["lumen"]["grounding"];
  EXPECT_EQ(g["format"], "llava_1_5");
  EXPECT_EQ(g["image"], json({{"index", 1}, {"width", 64}, {"height", 48}}));
  const std::string content = j["choices"][0]["message"]["content"];
  const ImageProcessor proc = ImageProcessor::from_file(tiny("llava") + "/preprocessor_config.json");
  server::GroundingImage gi;
  gi.index = 1;
  gi.geometry = geometry_for(GeometryMode::Processor, &proc, 64, 48);
  EXPECT_EQ(g, json::parse(server::grounding_field(grounding::Format::Llava15, content, gi).dump()));
  // The message itself stays OpenAI's.
  EXPECT_EQ(j["choices"][0]["message"].size(), 2u) << j["choices"][0]["message"].dump();

  // Streamed: the chunk with the finish_reason carries the same field; no other chunk does.
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  json events = post_chat(body);
  ASSERT_GE(events.size(), 3u);
  int carrying = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    if (!events[i].contains("lumen")) continue;
    ++carrying;
    EXPECT_FALSE(events[i]["choices"][0]["finish_reason"].is_null()) << "event " << i;
    EXPECT_EQ(events[i]["lumen"]["grounding"], g);
  }
  EXPECT_EQ(carrying, 1);
  EXPECT_TRUE(events.back().contains("usage"));  // the usage chunk stays the last one

  // box_format "none": no field; another format: parsed in it; a frame: applied.
  json off = body;
  off.erase("stream");
  off.erase("stream_options");
  off["lumen"] = {{"box_format", "none"}};
  EXPECT_FALSE(post_chat(off).contains("lumen"));
  off["lumen"] = {{"box_format", "qwen_vl"}, {"box_geometry", "identity"}};
  json q = post_chat(off);
  EXPECT_EQ(q["lumen"]["grounding"]["format"], "qwen_vl");
  gi.geometry = grounding::ImageGeometry::identity(64, 48);
  EXPECT_EQ(q["lumen"]["grounding"],
            json::parse(server::grounding_field(grounding::Format::QwenVL,
                                                q["choices"][0]["message"]["content"].get<std::string>(), gi)
                            .dump()));
  // No image in the conversation: the field says so and has no pixel coordinates.
  json text_only = post_chat({{"model", llava_id()}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 3}});
  EXPECT_TRUE(text_only["lumen"]["grounding"]["image"].is_null());
  for (const auto& e : text_only["lumen"]["grounding"]["entities"]) EXPECT_TRUE(e["boxes"].empty());
  // An unknown format is the caller's mistake, named.
  json bad = expect_error(client().Post("/v1/chat/completions",
                                        json{{"model", llava_id()},
                                             {"messages", {{{"role", "user"}, {"content", "x"}}}},
                                             {"lumen", {{"box_format", "hexagons"}}}}
                                            .dump(),
                                        "application/json"),
                          400, "invalid_value");
  EXPECT_EQ(bad["error"]["param"], "lumen.box_format");
  EXPECT_NE(bad["error"]["message"].get<std::string>().find("hexagons"), std::string::npos);
}

// KOSMOS-2 is served through GroundingSession. Its answer is the processed prompt plus its
// continuation, so a prompt that writes a referring expression with its box
// (Kosmos2Processor's own syntax) gives a known entity whatever the random weights write next.
TEST_F(ServerHttp, Kosmos2IsServedWithItsEntities) {
  const std::string jpeg = read_file(kImagePath);
  const Image decoded = decode_image_bytes(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size());
  const std::string prompt = "<grounding><phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863></object> is";
  json body = {{"model", kosmos2_id()},
               {"messages",
                {{{"role", "user"},
                  {"content", {{{"type", "image_url"}, {"image_url", {{"url", data_uri(jpeg)}}}},
                               {{"type", "text"}, {"text", prompt}}}}}}},
               {"max_tokens", 5},
               {"temperature", 0}};
  json j = post_chat(body);
  ASSERT_TRUE(j.contains("lumen")) << j.dump();
  const json g = j["lumen"]["grounding"];
  EXPECT_EQ(g["format"], "kosmos2");
  EXPECT_EQ(g["image"], json({{"index", 0}, {"width", decoded.width}, {"height", decoded.height}}));
  const std::string content = j["choices"][0]["message"]["content"];
  EXPECT_EQ(g["text"], content);
  EXPECT_EQ(content.rfind("a snowman", 0), 0u) << content;
  ASSERT_GE(g["entities"].size(), 1u) << g.dump();
  const json& e = g["entities"][0];
  EXPECT_EQ(e["phrase"], "a snowman");
  EXPECT_EQ(e["span"], json({0, 9}));
  const grounding::Box norm = grounding::kosmos2_patch_index_to_coordinate(44, 863, 32);
  const grounding::Box px =
      grounding::ImageGeometry::from_processor(ImageProcessor::from_file(tiny("kosmos2") + "/preprocessor_config.json"),
                                               decoded.width, decoded.height)
          .to_original(norm);
  ASSERT_EQ(e["norm_boxes"].size(), 1u);
  ASSERT_EQ(e["boxes"].size(), 1u);
  const std::vector<double> want_norm = {norm.x0, norm.y0, norm.x1, norm.y1}, want_px = {px.x0, px.y0, px.x1, px.y1};
  for (size_t k = 0; k < 4; ++k) {
    EXPECT_NEAR(e["norm_boxes"][0][k].get<double>(), want_norm[k], 1e-9);
    EXPECT_NEAR(e["boxes"][0][k].get<double>(), want_px[k], 1e-6);
  }
  EXPECT_GT(want_px[2] - want_px[0], 1.0);  // a real box, in pixels of the original image
  const std::string finish = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "stop" || finish == "length") << finish;
  // The image's placeholders, the markup and the words.
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int64_t>(), 16);
  EXPECT_LE(j["usage"]["completion_tokens"].get<int64_t>(), 5);

  // Streamed: the whole answer in one chunk, the same field on the finishing chunk.
  body["stream"] = true;
  json events = post_chat(body);
  std::string streamed;
  json streamed_grounding;
  for (const auto& ev : events) {
    if (ev["choices"].empty()) continue;
    if (ev["choices"][0]["delta"].contains("content")) streamed += ev["choices"][0]["delta"]["content"].get<std::string>();
    if (ev.contains("lumen")) streamed_grounding = ev["lumen"]["grounding"];
  }
  EXPECT_EQ(streamed, content);
  EXPECT_EQ(streamed_grounding, g);

  // What KOSMOS-2 cannot do is refused, naming the field.
  auto post = [&](const json& b) { return client().Post("/v1/chat/completions", b.dump(), "application/json"); };
  json no_image = {{"model", kosmos2_id()}, {"messages", {{{"role", "user"}, {"content", "An image of"}}}}};
  EXPECT_EQ(expect_error(post(no_image), 400, "image_required")["error"]["param"], "messages");
  json other_format = body;
  other_format.erase("stream");
  other_format["lumen"] = {{"box_format", "qwen_vl"}};
  EXPECT_EQ(expect_error(post(other_format), 400, "invalid_value")["error"]["param"], "lumen.box_format");
  json with_stop = body;
  with_stop.erase("stream");
  with_stop["stop"] = "\n";
  EXPECT_EQ(expect_error(post(with_stop), 400, "unsupported_parameter")["error"]["param"], "stop");
}

// GroundingSession's per-call options, as the server uses them: a length, and a hook that
// stops the generation (deadline, shutdown).
TEST(GroundingRun, LengthAndStopHook) {
  LoadOptions stored;
  stored.linear = LinearFormat::Stored;  // as open() loads KOSMOS-2
  GroundingSession s =
      GroundingSession::from_model(tiny("kosmos2"), std::shared_ptr<const Model>(load_model(tiny("kosmos2"), stored)));
  const std::string jpeg = read_file(kImagePath);
  const Image image = decode_image_bytes(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size());
  GroundingRun run;
  run.max_new_tokens = 3;
  GroundingResult a = s.ground(image, "An image of", run);
  EXPECT_LE(a.new_tokens, 3);
  EXPECT_EQ(a.finish_reason, a.new_tokens == 3 ? "length" : "stop");
  EXPECT_GT(a.prompt_tokens, 5);  // image placeholders and the prompt's words
  int calls = 0;
  run.max_new_tokens = 50;
  run.keep_going = [&] { return ++calls < 2; };
  GroundingResult b = s.ground(image, "An image of", run);
  EXPECT_LE(b.new_tokens, 2);
  EXPECT_EQ(calls, b.new_tokens);
  // The same greedy run as open()'s session gives.
  GroundingResult c = GroundingSession::open(tiny("kosmos2")).ground(image, "An image of", GroundingRun{3, {}, {}});
  EXPECT_EQ(c.raw, a.raw);
}

}  // namespace
}  // namespace lumen
