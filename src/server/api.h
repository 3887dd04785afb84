// The OpenAI-compatible request layer of `lumen serve`, free of any HTTP library so it can be
// tested on its own: JSON bodies are parsed and validated into plain structs, and every
// failure becomes an ApiError that maps to OpenAI's error JSON
// {"error": {"message", "type", "param", "code"}} with its HTTP status.
// Reference: https://platform.openai.com/docs/api-reference/chat/create (fields, error shape).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "grounding/grounding.h"
#include "runtime/grounding_session.h"
#include "vision/image.h"

namespace lumen::server {

class ApiError : public Error {
 public:
  ApiError(int status, std::string message, std::string type, std::string param = {}, std::string code = {})
      : Error(message), status(status), type(std::move(type)), param(std::move(param)), code(std::move(code)) {}
  int status;
  std::string type;   // "invalid_request_error", "authentication_error", ...
  std::string param;  // the request field at fault ("messages[0].content[1].image_url"), or empty
  std::string code;   // "model_not_found", "invalid_api_key", ...
};

// 400 invalid_request_error naming `param`.
[[noreturn]] void invalid_request(const std::string& message, const std::string& param = {},
                                  const std::string& code = "invalid_value");

// {"error": {...}}; param and code are null when empty, as OpenAI sends them.
nlohmann::json error_body(const ApiError& e);

struct Limits {
  size_t max_body_bytes = 32u << 20;      // whole request body (413 beyond)
  size_t max_image_bytes = 16u << 20;     // one image after base64 decoding
  int64_t max_image_pixels = 4096 * 4096; // width*height, checked from the header before decoding
  int64_t max_tokens = 4096;              // largest max_tokens a request may ask for
  size_t max_images = 16;                 // images in one request
  size_t max_inputs = 256;                // inputs of one embeddings request
  bool allow_local_files = false;         // image_url may name a file on the server
};

// Parses a request body as a JSON object (400 with the parser's position otherwise).
nlohmann::json parse_json_object(std::string_view body);

// RFC 4648 base64 (padding optional, whitespace not allowed); throws ApiError 400 for `param`.
std::string decode_base64(std::string_view text, const std::string& param);
std::string encode_base64(const void* data, size_t size);

// The bytes an image reference names: a data: URI ("data:image/png;base64,...") or, only with
// allow_local_files, a path or file:// URL. Remote URLs are refused (the server fetches nothing).
std::string load_image_ref(const std::string& ref, const Limits& limits, const std::string& param);
// Decodes image bytes under the pixel limit; bad or oversized images are 400 for `param`.
Image decode_request_image(const std::string& bytes, const Limits& limits, const std::string& param);

struct GroundingRequest {
  std::optional<grounding::Format> format;
  bool off = false;  // box_format "none"
  std::optional<GeometryMode> geometry;
};

struct ChatRequest {
  std::string model;
  // Messages as VlmSession::render_chat takes them: content a string or parts
  // {"type": "image"} / {"type": "text", "text": ...}; image bytes in order of appearance.
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  std::vector<std::string> images;
  std::vector<std::string> image_params;  // the field each image came from, for errors
  std::optional<int64_t> max_tokens;
  std::optional<float> temperature, top_p;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
  // lumen's request extension {"lumen": {"box_format": "qwen_vl", "box_geometry": "processor"}}:
  // how the answer writes boxes ("none": no grounding field) and which frame they refer to.
  // Unset: the server's --box-format / --box-geometry, else the family's default.
  GroundingRequest grounding;
};
ChatRequest parse_chat_request(const nlohmann::json& body, const Limits& limits);
// The "lumen" object of a chat request; unknown keys and values are 400s naming the field.
GroundingRequest parse_grounding_request(const nlohmann::json& ext);
std::string box_format_names();  // "kosmos2, paligemma, ...": for messages and --help

// The "grounding" object of a chat response (README, Serving): the answer parsed in `format`,
// with boxes/points in the pixels of `image` (the conversation's last image) as `lumen run
// --json` writes them, plus "format" and "image" ({"index", "width", "height"}, or null when
// the conversation has no image: then only norm_boxes/norm_points carry coordinates).
struct GroundingImage {
  size_t index = 0;  // among the request's images, in order of appearance
  grounding::ImageGeometry geometry;
};
nlohmann::ordered_json grounding_field(grounding::Format format, const grounding::GroundedText& parsed,
                                       const std::optional<GroundingImage>& image);
// Parses `answer` first (through image->geometry, or the identity frame without an image).
nlohmann::ordered_json grounding_field(grounding::Format format, std::string_view answer,
                                       const std::optional<GroundingImage>& image);

struct EmbeddingInput {
  bool is_image = false;
  std::string text;   // text input, or the data: URI of an image input
};
struct EmbeddingRequest {
  std::string model;
  std::vector<EmbeddingInput> inputs;
  bool base64 = false;  // encoding_format "base64": little-endian float32, base64
};
// input: a string or a list of strings; strings that start with "data:image/" are images
// (lumen's extension; OpenAI's endpoint takes text only).
EmbeddingRequest parse_embedding_request(const nlohmann::json& body, const Limits& limits);

struct ClassifyRequest {
  std::string model;
  std::string image;  // data: URI (or a local path with allow_local_files)
  std::vector<std::string> labels;
  std::string prompt_template = "a photo of a {}";  // "{}" is replaced by each label
};
// lumen's zero-shot classification endpoint: {"model", "image", "labels": [...], "template"?}.
ClassifyRequest parse_classify_request(const nlohmann::json& body, const Limits& limits);

// A random id such as "chatcmpl-1f0c..." (24 hex digits).
std::string make_id(const std::string& prefix);

}  // namespace lumen::server
