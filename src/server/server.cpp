#include "server/server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/sha256.h"
#include "runtime/dual_encoder_session.h"
#include "runtime/grounding_session.h"
#include "runtime/image_text_session.h"
#include "runtime/scheduler.h"
#include "runtime/vlm_session.h"
#include "server/metrics.h"
#include "server/web_page.h"
#include "vision/image_processor.h"

namespace lumen::server {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, error_body(e)); }

// The error a status gets when nothing more specific was said (routing, body limits).
ApiError generic_error(int status) {
  switch (status) {
    case 404: return ApiError(404, "no such endpoint", "invalid_request_error", "", "not_found");
    case 405: return ApiError(405, "method not allowed on this endpoint", "invalid_request_error", "", "method_not_allowed");
    case 413: return ApiError(413, "the request body is larger than the server's limit", "invalid_request_error", "", "request_too_large");
    case 414: return ApiError(414, "the request URI is too long", "invalid_request_error", "", "uri_too_long");
    default:
      if (status >= 500) return ApiError(status, "internal server error", "server_error", "", "internal_error");
      return ApiError(status, "bad request", "invalid_request_error", "", "bad_request");
  }
}

// Metric label of a path: the known endpoints, else "other" (bounded label set).
std::string endpoint_label(const std::string& path) {
  static const char* known[] = {"/", "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/embeddings",
                                "/v1/classify"};
  for (const char* k : known)
    if (path == k) return k;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

std::string sse(const json& j) { return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n"; }

thread_local Clock::time_point t_request_start;
thread_local bool t_request_started = false;

}  // namespace

struct Server::Impl {
  struct ModelEntry {
    std::string id, dir, family, kind;  // kind: "chat" or "embedding"
    int64_t created = 0;
    std::unique_ptr<VlmSession> vlm;
    std::unique_ptr<GenerationScheduler> scheduler;
    std::unique_ptr<DualEncoderSession> dual;
    std::mutex dual_m;  // one embedding batch at a time per model (bounded memory)
    // Image-to-text models that are no chat models, served one request at a time on the
    // handler's thread: grounding models (KOSMOS-2) and captioners (BLIP, BLIP-2).
    std::unique_ptr<GroundingSession> grounder;
    std::unique_ptr<ImageTextSession> captioner;
    std::timed_mutex serial_m;
    std::atomic<size_t> serial_in_flight{0};  // running + waiting for their turn
    // Chat models: the box format of the "grounding" field when a request names none.
    std::optional<grounding::Format> box_format;
    std::shared_ptr<const ImageProcessor> processor;  // for the "processor" box geometry
  };

  // What a chat request's answer is parsed with for its "grounding" field.
  struct GroundingPlan {
    std::optional<grounding::Format> format;  // none: no field
    GeometryMode geometry = GeometryMode::Processor;
  };

  ServerOptions opt;
  std::vector<std::unique_ptr<ModelEntry>> models;
  httplib::Server http;
  Metrics metrics;
  std::atomic<bool> draining{false};
  std::atomic<int> open_streams{0};
  std::once_flag shutdown_once;
  // Set by shutdown(): when grounding-model requests still running must stop.
  std::atomic<Clock::rep> drain_deadline{Clock::time_point::max().time_since_epoch().count()};
  std::optional<grounding::Format> box_format_default;
  bool box_format_off = false;
  GeometryMode box_geometry = GeometryMode::Processor;

  explicit Impl(ServerOptions o) : opt(std::move(o)) {
    LUMEN_CHECK(!opt.models.empty(), "no model: give --model DIR at least once");
    LUMEN_CHECK(opt.parallel >= 1, "--parallel must be at least 1, got ", opt.parallel);
    if (opt.box_format == "none") {
      box_format_off = true;
    } else if (!opt.box_format.empty()) {
      box_format_default = grounding::format_from_name(opt.box_format);
      LUMEN_CHECK(box_format_default, "--box-format: unknown box format '", opt.box_format, "' (known: ",
                  box_format_names(), ", none)");
    }
    const auto mode = geometry_mode_from_name(opt.box_geometry);
    LUMEN_CHECK(mode, "--box-geometry: unknown frame '", opt.box_geometry, "' (known: processor, identity, pad-square)");
    box_geometry = *mode;
    for (const auto& dir : opt.models) load(dir);
    routes();
  }

  void load(const std::string& dir) {
    auto e = std::make_unique<ModelEntry>();
    e->dir = dir;
    std::string id = std::filesystem::path(dir).lexically_normal().filename().string();
    if (id.empty()) id = std::filesystem::path(dir).lexically_normal().parent_path().filename().string();
    for (const auto& m : models) LUMEN_CHECK(m->id != id, dir, ": a model named '", id, "' is already served");
    e->id = id;
    e->created = unix_now();
    std::unique_ptr<Model> model = load_model(dir, opt.load);
    e->family = model->family();
    if (dynamic_cast<const VisionLanguageModel*>(model.get())) {
      e->kind = "chat";
      e->vlm = std::make_unique<VlmSession>(VlmSession::from_model(dir, std::shared_ptr<const Model>(std::move(model))));
      SchedulerOptions so;
      so.slots = opt.parallel;
      so.max_queue = opt.max_queue;
      so.image_cache_entries = opt.image_cache_entries;
      so.prefill_chunk = opt.prefill_chunk;
      e->scheduler = std::make_unique<GenerationScheduler>(*e->vlm, so);
      if (!box_format_off) e->box_format = box_format_default ? box_format_default : default_box_format(e->family);
      const std::string pre = dir + "/preprocessor_config.json";
      if (std::filesystem::exists(pre))
        e->processor = std::make_shared<const ImageProcessor>(ImageProcessor::from_file(pre));
    } else if (model->dual_encoder()) {  // CLIP, SigLIP, and BLIP retrieval's contrastive part
      e->kind = "embedding";
      e->dual = std::make_unique<DualEncoderSession>(DualEncoderSession::from_model(dir, std::move(model)));
    } else if (GroundingSession::serves_model(*model)) {
      e->kind = "chat";
      e->grounder = std::make_unique<GroundingSession>(
          GroundingSession::from_model(dir, std::shared_ptr<const Model>(std::move(model))));
      // Its answers are in its own markup: --box-format only turns the field off ("none").
      if (!box_format_off) e->box_format = e->grounder->format();
    } else if (ImageTextSession::unsupported_reason(*model).empty()) {
      e->kind = "chat";
      e->captioner = std::make_unique<ImageTextSession>(
          ImageTextSession::from_model(dir, std::shared_ptr<const Model>(std::move(model))));
      // Captions hold no boxes unless a request or --box-format names a format.
      if (!box_format_off) e->box_format = box_format_default;
      const std::string pre = dir + "/preprocessor_config.json";
      if (std::filesystem::exists(pre))
        e->processor = std::make_shared<const ImageProcessor>(ImageProcessor::from_file(pre));
    } else {
      fail(dir, ": a ", e->family,
           " model is neither a chat model, a grounding model nor an image/text dual encoder; it cannot be served");
    }
    models.push_back(std::move(e));
  }

  ModelEntry& find_model(const std::string& id, const std::string& want_kind) {
    for (auto& m : models)
      if (m->id == id) {
        if (m->kind != want_kind)
          throw ApiError(400,
                         "model '" + id + "' is " + (m->kind == "chat" ? "a chat model" : "an embedding model") +
                             " and does not serve this endpoint",
                         "invalid_request_error", "model", "model_not_supported");
        return *m;
      }
    std::string known;
    for (auto& m : models) known += (known.empty() ? "" : ", ") + m->id;
    throw ApiError(404, "the model '" + id + "' does not exist (served: " + known + ")", "invalid_request_error",
                   "model", "model_not_found");
  }

  // Runs a handler, turning every exception into OpenAI's error JSON: nothing a request does
  // may take the server down.
  template <typename F>
  httplib::Server::Handler guarded(F fn) {
    return [fn](const httplib::Request& req, httplib::Response& res) {
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::bad_alloc&) {
        send_error(res, ApiError(507, "out of memory while handling the request", "server_error", "", "out_of_memory"));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error", "", "internal_error"));
      }
    };
  }

  void routes() {
    http.set_payload_max_length(opt.limits.max_body_bytes);
    http.set_read_timeout(30, 0);
    http.set_write_timeout(30, 0);
    // httplib closes a keep-alive connection after 5 requests by default; clients that pool
    // connections (undici, the openai SDK) then race the close and see ECONNRESET under load.
    http.set_keep_alive_max_count(100000);
    // Handler threads mostly wait on their job: enough for every slot and queued request plus
    // the cheap endpoints, so /health and /metrics answer while the queue is full.
    const size_t threads =
        std::max<size_t>(8, static_cast<size_t>(opt.parallel) * models.size() + opt.max_queue * models.size() + 8);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_request_start = Clock::now();
      t_request_started = true;
      if (!opt.cors_origin.empty()) {
        res.set_header("Access-Control-Allow-Origin", opt.cors_origin);
        res.set_header("Vary", "Origin");
        if (req.method == "OPTIONS") {
          res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
          res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
          res.set_header("Access-Control-Max-Age", "600");
          res.status = 204;
          return httplib::Server::HandlerResponse::Handled;
        }
      }
      const bool api = req.path.rfind("/v1/", 0) == 0;
      if (api && !opt.api_key.empty()) {
        const std::string auth = req.get_header_value("Authorization");
        if (auth.empty()) {
          send_error(res, ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", "authentication_error",
                                   "", "missing_api_key"));
          return httplib::Server::HandlerResponse::Handled;
        }
        if (auth != "Bearer " + opt.api_key) {
          send_error(res, ApiError(401, "incorrect API key", "authentication_error", "", "invalid_api_key"));
          return httplib::Server::HandlerResponse::Handled;
        }
      }
      if (draining && api && req.method == "POST") {
        send_error(res, ApiError(503, "the server is shutting down", "server_error", "", "shutting_down"));
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    // Errors httplib answers itself (no route, body over the limit, unparsable request) get
    // OpenAI's error JSON too; responses that already carry a body are left alone.
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty() || res.content_length_ > 0) return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, generic_error(res.status));
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
      send_error(res, generic_error(500));
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      const double s = t_request_started ? std::chrono::duration<double>(Clock::now() - t_request_start).count() : 0.0;
      t_request_started = false;
      metrics.observe_request(endpoint_label(req.path), res.status, s);
    });

    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(kWebIndexHtml, "text/html; charset=utf-8");
    });
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      json ids = json::array();
      for (auto& m : models) ids.push_back(m->id);
      if (draining)
        send_json(res, 503, {{"status", "shutting_down"}, {"models", ids}});
      else
        send_json(res, 200, {{"status", "ok"}, {"models", ids}});
    });
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(render_metrics(), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/v1/models", guarded([this](const httplib::Request&, httplib::Response& res) {
      json data = json::array();
      for (auto& m : models) data.push_back(model_json(*m));
      send_json(res, 200, {{"object", "list"}, {"data", data}});
    }));
    http.Get(R"(/v1/models/(.+))", guarded([this](const httplib::Request& req, httplib::Response& res) {
      const std::string id = req.matches[1];
      for (auto& m : models)
        if (m->id == id) return send_json(res, 200, model_json(*m));
      throw ApiError(404, "the model '" + id + "' does not exist", "invalid_request_error", "model", "model_not_found");
    }));
    http.Post("/v1/chat/completions",
              guarded([this](const httplib::Request& req, httplib::Response& res) { chat(req, res); }));
    http.Post("/v1/embeddings",
              guarded([this](const httplib::Request& req, httplib::Response& res) { embeddings(req, res); }));
    http.Post("/v1/classify",
              guarded([this](const httplib::Request& req, httplib::Response& res) { classify(req, res); }));
  }

  json model_json(const ModelEntry& m) const {
    return {{"id", m.id},
            {"object", "model"},
            {"created", m.created},
            {"owned_by", "lumen"},
            {"lumen",
             {{"kind", m.kind},
              {"family", m.family},
              {"box_format", m.box_format ? json(grounding::format_name(*m.box_format)) : json(nullptr)}}}};
  }

  std::string render_metrics() {
    Metrics::Gauge queued{"lumen_queue_depth", "Chat requests waiting for a slot.", "gauge", {}};
    Metrics::Gauge active{"lumen_active_sequences", "Chat sequences being generated.", "gauge", {}};
    Metrics::Gauge hits{"lumen_image_cache_hits_total", "Images whose features came from the cache.", "counter", {}};
    Metrics::Gauge misses{"lumen_image_cache_misses_total", "Images encoded (not in the cache).", "counter", {}};
    Metrics::Gauge steps{"lumen_decode_steps_total", "Batched decode forward passes.", "counter", {}};
    Metrics::Gauge rows{"lumen_decode_rows_total", "Sequences carried by those passes (rows/steps = batch size).",
                        "counter", {}};
    Metrics::Gauge cancelled{"lumen_cancelled_total", "Chat requests cancelled (client gone).", "counter", {}};
    Metrics::Gauge timed_out{"lumen_timed_out_total", "Chat requests past --timeout.", "counter", {}};
    for (auto& m : models) {
      if (!m->scheduler) continue;
      const SchedulerStats s = m->scheduler->stats();
      const std::string l = "model=\"" + m->id + "\"";
      queued.values.push_back({l, static_cast<double>(s.queued)});
      active.values.push_back({l, static_cast<double>(s.active)});
      hits.values.push_back({l, static_cast<double>(s.image_cache_hits)});
      misses.values.push_back({l, static_cast<double>(s.image_cache_misses)});
      steps.values.push_back({l, static_cast<double>(s.batched_steps)});
      rows.values.push_back({l, static_cast<double>(s.batched_rows)});
      cancelled.values.push_back({l, static_cast<double>(s.cancelled)});
      timed_out.values.push_back({l, static_cast<double>(s.timed_out)});
    }
    Metrics::Gauge up{"lumen_shutting_down", "1 while the server drains before exiting.", "gauge",
                      {{"", draining ? 1.0 : 0.0}}};
    return metrics.render({queued, active, hits, misses, steps, rows, cancelled, timed_out, up});
  }

  // ---- /v1/chat/completions ----

  // The request's box format and frame, else the model's default; validated against the model.
  GroundingPlan grounding_plan(const ModelEntry& m, const ChatRequest& cr) const {
    GroundingPlan plan;
    plan.format = cr.grounding.off ? std::nullopt : cr.grounding.format ? cr.grounding.format : m.box_format;
    plan.geometry = cr.grounding.geometry.value_or(box_geometry);
    if (m.grounder) {
      if (cr.grounding.format && *cr.grounding.format != m.grounder->format())
        invalid_request("model '" + m.id + "' (" + m.family + ") writes boxes in the " +
                            grounding::format_name(m.grounder->format()) + " format only; 'lumen.box_format' cannot be '" +
                            grounding::format_name(*cr.grounding.format) + "'",
                        "lumen.box_format");
      if (cr.grounding.geometry && *cr.grounding.geometry != GeometryMode::Processor)
        invalid_request("model '" + m.id + "' (" + m.family +
                            ") places its boxes in its processor's frame; 'lumen.box_geometry' must be 'processor'",
                        "lumen.box_geometry");
    }
    return plan;
  }

  // The pixel frame of the grounding field: the conversation's last image, as the model saw it.
  std::optional<GroundingImage> grounding_image(const ModelEntry& m, const GroundingPlan& plan, size_t count,
                                                const Image* last) const {
    if (!plan.format || count == 0 || !last) return std::nullopt;
    GroundingImage gi;
    gi.index = count - 1;
    gi.geometry = m.grounder ? m.grounder->geometry_for(last->width, last->height)
                             : geometry_for(plan.geometry, m.processor.get(), last->width, last->height);
    return gi;
  }

  static json completion_json(const std::string& id, int64_t created, const std::string& model, const std::string& text,
                              const std::string& finish, const json& usage) {
    return {{"id", id},
            {"object", "chat.completion"},
            {"created", created},
            {"model", model},
            {"choices",
             {{{"index", 0},
               {"message", {{"role", "assistant"}, {"content", text}}},
               {"logprobs", nullptr},
               {"finish_reason", finish}}}},
            {"usage", usage}};
  }

  static json chunk_json(const std::string& id, int64_t created, const std::string& model, const json& delta,
                         const json& finish) {
    return {{"id", id},
            {"object", "chat.completion.chunk"},
            {"created", created},
            {"model", model},
            {"choices", {{{"index", 0}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", finish}}}}};
  }

  void chat(const httplib::Request& req, httplib::Response& res) {
    const Clock::time_point t0 = Clock::now();
    const json body = parse_json_object(req.body);
    ChatRequest cr = parse_chat_request(body, opt.limits);
    ModelEntry& m = find_model(cr.model, "chat");
    const GroundingPlan plan = grounding_plan(m, cr);
    if (m.grounder || m.captioner) return chat_serial(m, cr, plan, t0, res);
    GenerationRequest g;
    for (size_t i = 0; i < cr.images.size(); ++i) {
      RequestImage ri;
      ri.image = decode_request_image(cr.images[i], opt.limits, cr.image_params[i]);
      ri.sha256 = sha256_hex(cr.images[i]);
      g.images.push_back(std::move(ri));
    }
    const std::optional<GroundingImage> gimage =
        grounding_image(m, plan, g.images.size(), g.images.empty() ? nullptr : &g.images.back().image);
    try {
      g.prompt_text = m.vlm->render_chat(cr.messages, true);
    } catch (const Error& e) {
      invalid_request(std::string("the model's chat template rejected the messages: ") + e.what(), "messages");
    }
    g.params = m.vlm->default_params();
    if (cr.max_tokens) {
      g.params.max_new_tokens = *cr.max_tokens;
      g.max_tokens_explicit = true;
    } else {
      g.params.max_new_tokens = std::min(g.params.max_new_tokens, opt.limits.max_tokens);
    }
    if (cr.temperature) g.params.sampling.temperature = *cr.temperature;
    if (cr.top_p) g.params.sampling.top_p = *cr.top_p;
    if (cr.seed) g.params.sampling.seed = *cr.seed;
    for (auto& s : cr.stop) g.params.stop.push_back(s);
    g.deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.timeout_seconds));
    std::shared_ptr<GenerationJob> job;
    try {
      job = m.scheduler->submit(std::move(g));
    } catch (const QueueFull& e) {
      throw ApiError(429, e.what(), "rate_limit_error", "", "queue_full");
    } catch (const Error& e) {
      throw ApiError(503, e.what(), "server_error", "", "shutting_down");
    }
    const std::string id = make_id("chatcmpl-");
    const int64_t created = unix_now();
    // lumen's extension object of the last response / chunk: the answer's boxes.
    const std::optional<grounding::Format> format = plan.format;
    auto extension = [format, gimage](const std::string& answer) {
      return json{{"grounding", grounding_field(*format, answer, gimage)}};
    };
    // Wait for the first text or the end: an error found before any output (context overflow,
    // image markers typed into the text, a full-queue timeout) still gets its proper status.
    std::string first;
    while (first.empty() && job->wait_text(&first, std::chrono::milliseconds(250))) {
    }
    if (!first.empty()) metrics.observe_time_to_first_token(std::chrono::duration<double>(Clock::now() - t0).count());
    const JobEnd end_now = job->end();
    if (first.empty() && end_now != JobEnd::Stop && end_now != JobEnd::Length) throw job_error(*job);
    if (!cr.stream) {
      job->wait_done();
      const JobEnd end = job->end();
      if (end != JobEnd::Stop && end != JobEnd::Length) throw job_error(*job);
      metrics.observe_tokens(m.id, job->prompt_tokens(), job->completion_tokens());
      json out = completion_json(id, created, m.id, job->text(), job_end_name(end), usage_json(*job));
      if (format) out["lumen"] = extension(job->text());
      send_json(res, 200, out);
      return;
    }
    ++open_streams;
    auto stream_done = std::make_shared<std::atomic<bool>>(false);
    const std::string model_id = m.id;
    const bool include_usage = cr.include_usage;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, job, id, created, model_id, include_usage, first, format, extension](size_t, httplib::DataSink& sink) {
          auto chunk = [&](const json& delta, const json& finish) {
            return sse(chunk_json(id, created, model_id, delta, finish));
          };
          auto write = [&](const std::string& s) {
            if (sink.write(s.data(), s.size())) return true;
            job->cancel();  // the client went away: free the slot at the next step
            return false;
          };
          if (!write(chunk({{"role", "assistant"}, {"content", ""}}, nullptr))) return false;
          if (!first.empty() && !write(chunk({{"content", first}}, nullptr))) return false;
          std::string piece;
          while (job->wait_text(&piece, std::chrono::milliseconds(250))) {
            if (piece.empty()) continue;
            if (!write(chunk({{"content", piece}}, nullptr))) return false;
            piece.clear();
          }
          const JobEnd end = job->end();
          if (end == JobEnd::Stop || end == JobEnd::Length) {
            // The finishing chunk carries the grounding of the whole answer.
            json last = chunk_json(id, created, model_id, json::object(), job_end_name(end));
            if (format) last["lumen"] = extension(job->text());
            if (!write(sse(last))) return false;
            metrics.observe_tokens(model_id, job->prompt_tokens(), job->completion_tokens());
          } else {
            // Mid-stream the status line is gone: tell the client in the stream, as OpenAI does.
            if (!write(sse(error_body(job_error(*job))))) return false;
          }
          if (include_usage) {
            json u = {{"id", id},          {"object", "chat.completion.chunk"}, {"created", created},
                      {"model", model_id}, {"choices", json::array()},          {"usage", usage_json(*job)}};
            if (!write(sse(u))) return false;
          }
          if (!write("data: [DONE]\n\n")) return false;
          sink.done();
          return true;
        },
        [this, job, stream_done](bool success) {
          if (!success) job->cancel();
          if (!stream_done->exchange(true)) --open_streams;
        });
  }

  // What a model served one request at a time answered.
  struct SerialAnswer {
    std::string text, finish_reason;
    int64_t prompt_tokens = 0, new_tokens = 0;
    std::optional<grounding::GroundedText> grounded;  // KOSMOS-2's entities (its own markup)
  };

  // KOSMOS-2 continues the prompt about the image; its answer is post_process_generation's
  // text (the prompt's words and their continuation, markup removed), so the entities' spans
  // index into it.
  SerialAnswer answer_grounder(ModelEntry& m, const ChatRequest& cr, const Image& image, const std::string& prompt,
                               const std::function<bool()>& keep_going) {
    GroundingRun run;
    run.max_new_tokens =
        cr.max_tokens.value_or(std::min<int64_t>(GroundingOptions{}.max_new_tokens, opt.limits.max_tokens));
    SamplingParams sampling;
    if (cr.temperature) sampling.temperature = *cr.temperature;
    if (cr.top_p) sampling.top_p = *cr.top_p;
    if (cr.seed) sampling.seed = *cr.seed;
    run.sampling = sampling;
    run.keep_going = keep_going;
    GroundingResult r = m.grounder->ground(image, prompt, run);
    return {r.grounded.text, r.finish_reason, r.prompt_tokens, r.new_tokens, r.grounded};
  }

  // BLIP / BLIP-2 take the prompt as their reference places it (a VQA checkpoint answers it, a
  // captioner continues it, BLIP-2 gives it to its LM) and decode greedily, 20 new tokens unless
  // max_tokens says otherwise (BLIP's max_length default).
  SerialAnswer answer_captioner(ModelEntry& m, const ChatRequest& cr, const Image& image, const std::string& prompt) {
    if ((cr.temperature && *cr.temperature > 0) || (cr.top_p && *cr.top_p < 1))
      invalid_request("model '" + m.id + "' (" + m.family + ") decodes greedily: 'temperature' must be 0 and 'top_p' 1",
                      cr.temperature && *cr.temperature > 0 ? "temperature" : "top_p", "unsupported_parameter");
    ImageTextOptions o;
    o.num_beams = 1;
    o.max_new_tokens = cr.max_tokens.value_or(std::min<int64_t>(20, opt.limits.max_tokens));
    ImageTextResult r = m.captioner->generate(image, prompt, o);
    return {r.text, r.finish_reason, r.prompt_tokens, r.new_tokens, std::nullopt};
  }

  // Models that are no chat models (KOSMOS-2, BLIP, BLIP-2) continue or answer one prompt
  // about one image: they get the text of the conversation's last user message and its last
  // image. Requests run one at a time per model on the handler's thread (up to --max-queue wait
  // for their turn), and a stream carries the whole answer in one chunk (KOSMOS-2's markup is
  // only removed from the finished text; BLIP decodes the answer whole).
  void chat_serial(ModelEntry& m, const ChatRequest& cr, const GroundingPlan& plan, Clock::time_point t0,
                   httplib::Response& res) {
    if (!cr.stop.empty())
      invalid_request("'stop' is not supported by model '" + m.id + "' (" + m.family + ")", "stop",
                      "unsupported_parameter");
    if (cr.images.empty())
      invalid_request("model '" + m.id + "' (" + m.family + ") answers about an image: the messages hold none",
                      "messages", "image_required");
    std::string prompt;
    for (size_t i = cr.messages.size(); i-- > 0 && prompt.empty();) {
      const auto& msg = cr.messages[i];
      if (msg["role"] != "user") continue;
      const auto& content = msg["content"];
      if (content.is_string()) {
        prompt = content.get<std::string>();
      } else {
        for (const auto& part : content)
          if (part["type"] == "text") prompt += (prompt.empty() ? "" : " ") + part["text"].get<std::string>();
      }
      break;
    }
    const size_t last = cr.images.size() - 1;
    const Image image = decode_request_image(cr.images[last], opt.limits, cr.image_params[last]);
    const Clock::time_point deadline =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.timeout_seconds));
    bool timed_out = false, shut_down = false;
    const std::function<bool()> keep_going = [&] {
      const Clock::time_point now = Clock::now();
      timed_out = now >= deadline;
      shut_down = now.time_since_epoch().count() >= drain_deadline.load();
      return !timed_out && !shut_down;
    };

    // One runs, up to --max-queue wait their turn: the scheduler's limits with one slot.
    struct InFlight {
      std::atomic<size_t>& n;
      ~InFlight() { --n; }
    };
    const bool admitted = m.serial_in_flight.fetch_add(1) < opt.max_queue + 1;
    InFlight in_flight{m.serial_in_flight};
    if (!admitted)
      throw ApiError(429, "the queue of model '" + m.id + "' is full (" + std::to_string(opt.max_queue) + " waiting)",
                     "rate_limit_error", "", "queue_full");
    SerialAnswer r;
    {
      std::unique_lock<std::timed_mutex> lk(m.serial_m, std::defer_lock);
      if (!lk.try_lock_until(deadline))
        throw ApiError(504, "timed out waiting for model '" + m.id + "' (the server's --timeout)", "timeout_error", "",
                       "timeout");
      try {
        r = m.grounder ? answer_grounder(m, cr, image, prompt, keep_going) : answer_captioner(m, cr, image, prompt);
      } catch (const ApiError&) {
        throw;
      } catch (const Error& e) {
        invalid_request(std::string("model '") + m.id + "' could not take the prompt: " + e.what(), "messages",
                        "invalid_prompt");
      }
    }
    keep_going();  // a captioner has no hook inside: check the clock once it is done
    if (shut_down)
      throw ApiError(503, "the server shut down before the answer was finished", "server_error", "", "shutting_down");
    if (timed_out)
      throw ApiError(504, "the answer took longer than the server's --timeout", "timeout_error", "", "timeout");
    metrics.observe_time_to_first_token(std::chrono::duration<double>(Clock::now() - t0).count());
    metrics.observe_tokens(m.id, r.prompt_tokens, r.new_tokens);

    const std::string id = make_id("chatcmpl-");
    const int64_t created = unix_now();
    const json usage = {{"prompt_tokens", r.prompt_tokens},
                        {"completion_tokens", r.new_tokens},
                        {"total_tokens", r.prompt_tokens + r.new_tokens}};
    const std::string& text = r.text;
    json extension;
    if (plan.format) {
      const std::optional<GroundingImage> gimage = grounding_image(m, plan, cr.images.size(), &image);
      extension = {{"grounding", r.grounded ? grounding_field(*plan.format, *r.grounded, gimage)
                                            : grounding_field(*plan.format, text, gimage)}};
    }
    if (!cr.stream) {
      json out = completion_json(id, created, m.id, text, r.finish_reason, usage);
      if (plan.format) out["lumen"] = extension;
      send_json(res, 200, out);
      return;
    }
    std::string events = sse(chunk_json(id, created, m.id, {{"role", "assistant"}, {"content", ""}}, nullptr));
    if (!text.empty()) events += sse(chunk_json(id, created, m.id, {{"content", text}}, nullptr));
    json last_chunk = chunk_json(id, created, m.id, json::object(), r.finish_reason);
    if (plan.format) last_chunk["lumen"] = extension;
    events += sse(last_chunk);
    if (cr.include_usage)
      events += sse({{"id", id},
                     {"object", "chat.completion.chunk"},
                     {"created", created},
                     {"model", m.id},
                     {"choices", json::array()},
                     {"usage", usage}});
    events += "data: [DONE]\n\n";
    res.set_header("Cache-Control", "no-cache");
    res.set_content(events, "text/event-stream");
  }

  static json usage_json(const GenerationJob& job) {
    return {{"prompt_tokens", job.prompt_tokens()},
            {"completion_tokens", job.completion_tokens()},
            {"total_tokens", job.prompt_tokens() + job.completion_tokens()}};
  }

  static ApiError job_error(const GenerationJob& job) {
    switch (job.end()) {
      case JobEnd::BadRequest: return ApiError(400, job.error(), "invalid_request_error", "messages", "invalid_prompt");
      case JobEnd::Timeout:
        return ApiError(504, job.error() + " (the server's --timeout)", "timeout_error", "", "timeout");
      case JobEnd::Shutdown: return ApiError(503, job.error(), "server_error", "", "shutting_down");
      case JobEnd::Cancelled: return ApiError(499, job.error(), "invalid_request_error", "", "cancelled");
      default: return ApiError(500, "generation failed: " + job.error(), "server_error", "", "internal_error");
    }
  }

  // ---- /v1/embeddings, /v1/classify ----

  void embeddings(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_json_object(req.body);
    EmbeddingRequest er = parse_embedding_request(body, opt.limits);
    ModelEntry& m = find_model(er.model, "embedding");
    std::vector<std::string> texts;
    std::vector<Image> images;
    std::vector<std::pair<bool, size_t>> where;  // per input: (is image, row in its batch)
    size_t image_count = 0;
    for (size_t i = 0; i < er.inputs.size(); ++i) {
      const auto& in = er.inputs[i];
      const std::string param = er.inputs.size() == 1 && !body["input"].is_array() ? "input" : "input[" + std::to_string(i) + "]";
      if (in.is_image) {
        if (++image_count > opt.limits.max_images)
          invalid_request("too many images: at most " + std::to_string(opt.limits.max_images) + " per request", param,
                          "too_many_images");
        images.push_back(decode_request_image(load_image_ref(in.text, opt.limits, param), opt.limits, param));
        where.push_back({true, images.size() - 1});
      } else {
        texts.push_back(in.text);
        where.push_back({false, texts.size() - 1});
      }
    }
    Tensor text_emb, image_emb;
    int64_t tokens = 0;
    {
      std::lock_guard<std::mutex> lk(m.dual_m);
      try {
        if (!texts.empty()) text_emb = m.dual->embed_texts(texts);
        if (!images.empty()) image_emb = m.dual->embed_images(images);
        for (const auto& t : texts)
          tokens += std::min<int64_t>(static_cast<int64_t>(m.dual->tokenizer().encode(t, true).ids.size()),
                                      m.dual->model().max_text_length());
      } catch (const Error& e) {
        invalid_request(e.what(), "input");
      }
    }
    json data = json::array();
    for (size_t i = 0; i < where.size(); ++i) {
      const Tensor& t = where[i].first ? image_emb : text_emb;
      const int64_t P = t.dim(1);
      const float* row = t.data<float>() + static_cast<int64_t>(where[i].second) * P;
      json emb;
      if (er.base64) {
        emb = encode_base64(row, static_cast<size_t>(P) * sizeof(float));  // x86: already little-endian
      } else {
        emb = json::array();
        for (int64_t k = 0; k < P; ++k) emb.push_back(row[k]);
      }
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", emb}});
    }
    metrics.observe_tokens(m.id, tokens, 0);
    send_json(res, 200,
              {{"object", "list"},
               {"data", data},
               {"model", m.id},
               {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
  }

  void classify(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_json_object(req.body);
    ClassifyRequest cr = parse_classify_request(body, opt.limits);
    ModelEntry& m = find_model(cr.model, "embedding");
    Image img = decode_request_image(load_image_ref(cr.image, opt.limits, "image"), opt.limits, "image");
    std::vector<std::string> prompts;
    for (const auto& l : cr.labels) {
      std::string p = cr.prompt_template;
      p.replace(p.find("{}"), 2, l);
      prompts.push_back(p);
    }
    Tensor logits, probs;
    {
      std::lock_guard<std::mutex> lk(m.dual_m);
      try {
        Tensor ie = m.dual->embed_images({img});
        Tensor te = m.dual->embed_texts(prompts);
        logits = m.dual->logits(ie, te);  // [1, T]
        probs = m.dual->probabilities(logits);
      } catch (const Error& e) {
        invalid_request(e.what(), "labels");
      }
    }
    json results = json::array();
    for (size_t i = 0; i < cr.labels.size(); ++i)
      results.push_back({{"label", cr.labels[i]},
                         {"probability", probs.data<float>()[i]},
                         {"logit", logits.data<float>()[i]}});
    const bool softmax = m.dual->model().scoring() == DualEncoder::Scoring::Softmax;
    send_json(res, 200,
              {{"object", "classification"},
               {"model", m.id},
               {"scoring", softmax ? "softmax" : "sigmoid"},
               {"results", results}});
  }

  void shutdown() {
    std::call_once(shutdown_once, [this] {
      draining = true;
      const auto grace = std::chrono::milliseconds(static_cast<int64_t>(opt.shutdown_grace_seconds * 1000));
      drain_deadline = (Clock::now() + std::chrono::duration_cast<Clock::duration>(grace)).time_since_epoch().count();
      // Schedulers end what the grace period does not cover; streams then write their last
      // event. Give them a moment to do so before the listener (and its threads) stop.
      for (auto& m : models)
        if (m->scheduler) m->scheduler->shutdown(grace);
      const auto until = Clock::now() + std::chrono::seconds(5);
      while (open_streams > 0 && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      http.stop();
    });
  }
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Server::~Server() {
  if (impl_) impl_->shutdown();
}

int Server::bind() {
  if (impl_->opt.port == 0) {
    const int port = impl_->http.bind_to_any_port(impl_->opt.host.c_str());
    LUMEN_CHECK(port > 0, "could not bind to ", impl_->opt.host, " on any port");
    return port;
  }
  LUMEN_CHECK(impl_->http.bind_to_port(impl_->opt.host.c_str(), impl_->opt.port), "could not bind to ",
              impl_->opt.host, ":", impl_->opt.port, " (in use, or not an address of this machine)");
  return impl_->opt.port;
}

void Server::listen() { impl_->http.listen_after_bind(); }

void Server::shutdown() { impl_->shutdown(); }

std::vector<std::string> Server::model_ids() const {
  std::vector<std::string> ids;
  for (auto& m : impl_->models) ids.push_back(m->id);
  return ids;
}

}  // namespace lumen::server
