#include "server/api.h"

#include <sys/stat.h>

#include <array>
#include <cctype>
#include <cmath>
#include <fstream>
#include <random>

namespace lumen::server {
namespace {

std::string type_name(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::boolean: return "a boolean";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::number_float: return "a number";
    case nlohmann::json::value_t::discarded: return "invalid";
    default: return "an integer";
  }
}

[[noreturn]] void wrong_type(const std::string& param, const std::string& want, const nlohmann::json& got) {
  invalid_request("'" + param + "' must be " + want + ", got " + type_name(got), param, "invalid_type");
}

// A field that is absent or null counts as not given (OpenAI's SDKs send nulls).
const nlohmann::json* field(const nlohmann::json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string required_string(const nlohmann::json& body, const char* name) {
  const nlohmann::json* v = field(body, name);
  if (!v) invalid_request(std::string("'") + name + "' is required", name, "missing_required_parameter");
  if (!v->is_string()) wrong_type(name, "a string", *v);
  return v->get<std::string>();
}

std::optional<double> optional_number(const nlohmann::json& body, const char* name, double lo, double hi,
                                      bool lo_open = false) {
  const nlohmann::json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) wrong_type(name, "a number", *v);
  const double x = v->get<double>();
  if (!std::isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo)) {
    std::ostringstream os;
    os << "'" << name << "' must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << x;
    invalid_request(os.str(), name);
  }
  return x;
}

std::optional<int64_t> optional_int(const nlohmann::json& body, const char* name) {
  const nlohmann::json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) wrong_type(name, "an integer", *v);
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    invalid_request(std::string("'") + name + "' is too large", name);
  return v->get<int64_t>();
}

bool optional_bool(const nlohmann::json& body, const char* name, bool fallback) {
  const nlohmann::json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
  return v->get<bool>();
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

// One message's content as render_chat takes it; image parts move their bytes to `images`.
nlohmann::ordered_json convert_content(const nlohmann::json& content, const std::string& param, ChatRequest& out,
                                       const Limits& limits) {
  if (content.is_null()) return "";
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) wrong_type(param, "a string or an array of content parts", content);
  nlohmann::ordered_json parts = nlohmann::ordered_json::array();
  for (size_t j = 0; j < content.size(); ++j) {
    const nlohmann::json& part = content[j];
    const std::string pp = param + "[" + std::to_string(j) + "]";
    if (!part.is_object()) wrong_type(pp, "an object", part);
    const std::string type = required_string(part, "type");
    if (type == "text") {
      const nlohmann::json* t = field(part, "text");
      if (!t || !t->is_string()) invalid_request("'" + pp + ".text' must be a string", pp + ".text", "invalid_type");
      parts.push_back({{"type", "text"}, {"text", t->get<std::string>()}});
    } else if (type == "image_url") {
      const nlohmann::json* iu = field(part, "image_url");
      std::string url;
      if (iu && iu->is_string()) {
        url = iu->get<std::string>();
      } else if (iu && iu->is_object() && field(*iu, "url") && (*iu)["url"].is_string()) {
        url = (*iu)["url"].get<std::string>();
      } else {
        invalid_request("'" + pp + ".image_url' must be an object with a string 'url'", pp + ".image_url",
                        "invalid_type");
      }
      if (out.images.size() >= limits.max_images)
        invalid_request("too many images: at most " + std::to_string(limits.max_images) + " per request",
                        pp + ".image_url", "too_many_images");
      out.images.push_back(load_image_ref(url, limits, pp + ".image_url.url"));
      out.image_params.push_back(pp + ".image_url.url");
      parts.push_back({{"type", "image"}});
    } else {
      invalid_request("'" + pp + ".type' must be 'text' or 'image_url', got '" + type + "'", pp + ".type");
    }
  }
  return parts;
}

}  // namespace

void invalid_request(const std::string& message, const std::string& param, const std::string& code) {
  throw ApiError(400, message, "invalid_request_error", param, code);
}

nlohmann::json error_body(const ApiError& e) {
  nlohmann::json err = {{"message", e.what()}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param.empty()) err["param"] = e.param;
  if (!e.code.empty()) err["code"] = e.code;
  return {{"error", err}};
}

nlohmann::json parse_json_object(std::string_view body) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body.begin(), body.end());
  } catch (const nlohmann::json::parse_error& e) {
    invalid_request(std::string("the request body is not valid JSON: ") + e.what(), "", "invalid_json");
  }
  if (!j.is_object()) invalid_request("the request body must be a JSON object, got " + type_name(j), "", "invalid_json");
  return j;
}

std::string decode_base64(std::string_view text, const std::string& param) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(a[i])] = static_cast<int8_t>(i);
    return t;
  }();
  size_t n = text.size();
  while (n > 0 && text[n - 1] == '=' && text.size() - n < 2) --n;
  if (n % 4 == 1) invalid_request("'" + param + "' is not valid base64 (bad length)", param, "invalid_base64");
  std::string out;
  out.reserve(n / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    const int8_t v = table[static_cast<uint8_t>(text[i])];
    if (v < 0)
      invalid_request("'" + param + "' is not valid base64 (unexpected character at offset " + std::to_string(i) + ")",
                      param, "invalid_base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  return out;
}

std::string encode_base64(const void* data, size_t size) {
  const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const uint8_t*>(data);
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    const uint32_t b = (uint32_t{p[i]} << 16) | (i + 1 < size ? uint32_t{p[i + 1]} << 8 : 0) |
                       (i + 2 < size ? uint32_t{p[i + 2]} : 0);
    out.push_back(a[(b >> 18) & 63]);
    out.push_back(a[(b >> 12) & 63]);
    out.push_back(i + 1 < size ? a[(b >> 6) & 63] : '=');
    out.push_back(i + 2 < size ? a[b & 63] : '=');
  }
  return out;
}

std::string load_image_ref(const std::string& ref, const Limits& limits, const std::string& param) {
  if (istarts_with(ref, "data:")) {
    const size_t comma = ref.find(',');
    if (comma == std::string::npos)
      invalid_request("'" + param + "' is a data: URI without a ',' before its data", param, "invalid_image_url");
    const std::string_view meta(ref.data() + 5, comma - 5);
    if (meta.size() < 7 || meta.substr(meta.size() - 7) != ";base64")
      invalid_request("'" + param + "' must be a base64 data: URI (data:image/png;base64,...)", param,
                      "invalid_image_url");
    const std::string_view payload(ref.data() + comma + 1, ref.size() - comma - 1);
    if (payload.size() / 4 * 3 > limits.max_image_bytes + 3)
      throw ApiError(413, "'" + param + "' is larger than the server's image limit of " +
                              std::to_string(limits.max_image_bytes) + " bytes",
                     "invalid_request_error", param, "image_too_large");
    std::string bytes = decode_base64(payload, param);
    if (bytes.empty()) invalid_request("'" + param + "' holds no image data", param, "invalid_image");
    return bytes;
  }
  if (istarts_with(ref, "http://") || istarts_with(ref, "https://"))
    invalid_request("'" + param + "': remote image URLs are not fetched; send the image as a data: URI", param,
                    "unsupported_image_url");
  if (!limits.allow_local_files)
    invalid_request("'" + param + "' must be a data: URI (local files need lumen serve --allow-local-files)", param,
                    "invalid_image_url");
  const std::string path = starts_with(ref, "file://") ? ref.substr(7) : ref;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    invalid_request("'" + param + "': no such file on the server: " + path, param, "invalid_image_url");
  if (static_cast<uint64_t>(st.st_size) > limits.max_image_bytes)
    throw ApiError(413, "'" + param + "' is larger than the server's image limit of " +
                            std::to_string(limits.max_image_bytes) + " bytes",
                   "invalid_request_error", param, "image_too_large");
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

Image decode_request_image(const std::string& bytes, const Limits& limits, const std::string& param) {
  DecodeOptions o;
  o.max_pixels = limits.max_image_pixels;
  try {
    return decode_image_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), o, param);
  } catch (const Error& e) {
    invalid_request(std::string("could not use the image: ") + e.what(), param, "invalid_image");
  }
}

ChatRequest parse_chat_request(const nlohmann::json& body, const Limits& limits) {
  ChatRequest r;
  r.model = required_string(body, "model");
  const nlohmann::json* msgs = field(body, "messages");
  if (!msgs) invalid_request("'messages' is required", "messages", "missing_required_parameter");
  if (!msgs->is_array()) wrong_type("messages", "an array", *msgs);
  if (msgs->empty()) invalid_request("'messages' must not be empty", "messages");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const nlohmann::json& m = (*msgs)[i];
    const std::string mp = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) wrong_type(mp, "an object", m);
    const nlohmann::json* role = field(m, "role");
    if (!role || !role->is_string()) invalid_request("'" + mp + ".role' must be a string", mp + ".role", "invalid_type");
    std::string rs = role->get<std::string>();
    if (rs == "developer") rs = "system";  // OpenAI's newer name for system instructions
    if (rs != "system" && rs != "user" && rs != "assistant")
      invalid_request("'" + mp + ".role' must be 'system', 'user' or 'assistant', got '" + rs + "'", mp + ".role");
    const auto it = m.find("content");
    const nlohmann::json content = it == m.end() ? nlohmann::json() : *it;
    if (content.is_null() && rs != "assistant")
      invalid_request("'" + mp + ".content' is required", mp + ".content", "missing_required_parameter");
    r.messages.push_back({{"role", rs}, {"content", convert_content(content, mp + ".content", r, limits)}});
  }
  auto mt = optional_int(body, "max_completion_tokens");
  if (!mt) mt = optional_int(body, "max_tokens");
  if (mt) {
    const char* name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (*mt < 1) invalid_request(std::string("'") + name + "' must be at least 1", name);
    if (*mt > limits.max_tokens)
      invalid_request(std::string("'") + name + "' is " + std::to_string(*mt) + ", this server allows at most " +
                          std::to_string(limits.max_tokens),
                      name);
    r.max_tokens = *mt;
  }
  if (auto t = optional_number(body, "temperature", 0, 2)) r.temperature = static_cast<float>(*t);
  if (auto p = optional_number(body, "top_p", 0, 1, /*lo_open=*/true)) r.top_p = static_cast<float>(*p);
  if (auto s = optional_int(body, "seed")) r.seed = static_cast<uint64_t>(*s);
  if (auto n = optional_int(body, "n"); n && *n != 1)
    invalid_request("'n' must be 1: this server returns one choice per request", "n", "unsupported_value");
  if (const nlohmann::json* stop = field(body, "stop")) {
    if (stop->is_string()) {
      r.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 4) invalid_request("'stop' takes at most 4 sequences", "stop");
      for (const auto& s : *stop) {
        if (!s.is_string()) wrong_type("stop", "a string or an array of strings", *stop);
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      wrong_type("stop", "a string or an array of strings", *stop);
    }
  }
  r.stream = optional_bool(body, "stream", false);
  if (const nlohmann::json* so = field(body, "stream_options")) {
    if (!so->is_object()) wrong_type("stream_options", "an object", *so);
    r.include_usage = optional_bool(*so, "include_usage", false);
  }
  if (const nlohmann::json* ext = field(body, "lumen")) r.grounding = parse_grounding_request(*ext);
  return r;
}

GroundingRequest parse_grounding_request(const nlohmann::json& ext) {
  if (!ext.is_object()) wrong_type("lumen", "an object", ext);
  GroundingRequest g;
  for (const auto& [key, value] : ext.items())
    if (key != "box_format" && key != "box_geometry")
      invalid_request("'lumen." + key + "' is not a lumen request field (known: box_format, box_geometry)",
                      "lumen." + key, "unknown_parameter");
  if (const nlohmann::json* f = field(ext, "box_format")) {
    if (!f->is_string()) wrong_type("lumen.box_format", "a string", *f);
    const std::string name = f->get<std::string>();
    if (name == "none") {
      g.off = true;
    } else {
      g.format = grounding::format_from_name(name);
      if (!g.format) invalid_request("'lumen.box_format': unknown box format '" + name + "' (known: " +
                                         box_format_names() + ", none)",
                                     "lumen.box_format");
    }
  }
  if (const nlohmann::json* m = field(ext, "box_geometry")) {
    if (!m->is_string()) wrong_type("lumen.box_geometry", "a string", *m);
    g.geometry = geometry_mode_from_name(m->get<std::string>());
    if (!g.geometry)
      invalid_request("'lumen.box_geometry': unknown frame '" + m->get<std::string>() +
                          "' (known: processor, identity, pad-square)",
                      "lumen.box_geometry");
  }
  return g;
}

std::string box_format_names() {
  std::string names;
  for (grounding::Format f : grounding::all_formats())
    names += (names.empty() ? "" : ", ") + std::string(grounding::format_name(f));
  return names;
}

nlohmann::ordered_json grounding_field(grounding::Format format, const grounding::GroundedText& parsed,
                                       const std::optional<GroundingImage>& image) {
  grounding::GroundedText g = parsed;
  if (!image) {
    // No image: pixel coordinates would be of nothing; the normalised ones still say where.
    for (auto& e : g.entities) {
      e.boxes.clear();
      e.points.clear();
    }
  }
  const nlohmann::ordered_json body = grounded_json(g);
  nlohmann::ordered_json out = {{"format", grounding::format_name(format)}, {"image", nullptr}};
  if (image)
    out["image"] = {{"index", image->index},
                    {"width", static_cast<int64_t>(image->geometry.width)},
                    {"height", static_cast<int64_t>(image->geometry.height)}};
  for (const auto& [key, value] : body.items()) out[key] = value;
  return out;
}

nlohmann::ordered_json grounding_field(grounding::Format format, std::string_view answer,
                                       const std::optional<GroundingImage>& image) {
  const grounding::ImageGeometry geometry = image ? image->geometry : grounding::ImageGeometry::identity(1, 1);
  return grounding_field(format, grounding::parse(format, answer, geometry), image);
}

EmbeddingRequest parse_embedding_request(const nlohmann::json& body, const Limits& limits) {
  EmbeddingRequest r;
  r.model = required_string(body, "model");
  const nlohmann::json* input = field(body, "input");
  if (!input) invalid_request("'input' is required", "input", "missing_required_parameter");
  auto add = [&](const nlohmann::json& v, const std::string& param) {
    if (!v.is_string()) wrong_type(param, "a string (token-id inputs are not supported)", v);
    EmbeddingInput in;
    in.text = v.get<std::string>();
    in.is_image = istarts_with(in.text, "data:image/");
    r.inputs.push_back(std::move(in));
  };
  if (input->is_array()) {
    if (input->empty()) invalid_request("'input' must not be empty", "input");
    if (input->size() > limits.max_inputs)
      invalid_request("'input' has " + std::to_string(input->size()) + " items, at most " +
                          std::to_string(limits.max_inputs) + " are allowed",
                      "input");
    for (size_t i = 0; i < input->size(); ++i) add((*input)[i], "input[" + std::to_string(i) + "]");
  } else {
    add(*input, "input");
  }
  if (const nlohmann::json* f = field(body, "encoding_format")) {
    if (!f->is_string() || (*f != "float" && *f != "base64"))
      invalid_request("'encoding_format' must be 'float' or 'base64'", "encoding_format");
    r.base64 = *f == "base64";
  }
  if (field(body, "dimensions"))
    invalid_request("'dimensions' is not supported: embeddings have the model's size", "dimensions",
                    "unsupported_parameter");
  return r;
}

ClassifyRequest parse_classify_request(const nlohmann::json& body, const Limits& limits) {
  ClassifyRequest r;
  r.model = required_string(body, "model");
  r.image = required_string(body, "image");
  const nlohmann::json* labels = field(body, "labels");
  if (!labels) invalid_request("'labels' is required", "labels", "missing_required_parameter");
  if (!labels->is_array() || labels->empty()) invalid_request("'labels' must be a non-empty array of strings", "labels");
  if (labels->size() > limits.max_inputs)
    invalid_request("'labels' has more than " + std::to_string(limits.max_inputs) + " items", "labels");
  for (const auto& l : *labels) {
    if (!l.is_string()) wrong_type("labels", "an array of strings", *labels);
    r.labels.push_back(l.get<std::string>());
  }
  if (const nlohmann::json* t = field(body, "template")) {
    if (!t->is_string()) wrong_type("template", "a string", *t);
    r.prompt_template = t->get<std::string>();
    if (r.prompt_template.find("{}") == std::string::npos)
      invalid_request("'template' must contain {} where the label goes", "template");
  }
  return r;
}

std::string make_id(const std::string& prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id.push_back(hex[rng() & 15]);
  return id;
}

}  // namespace lumen::server
