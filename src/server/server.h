// `lumen serve`: an OpenAI-compatible HTTP server over the checkpoints it was started with.
// Chat models (VlmSession) get /v1/chat/completions through a GenerationScheduler each;
// grounding models (GroundingSession: KOSMOS-2) get it too, one request at a time; dual
// encoders (DualEncoderSession) get /v1/embeddings and /v1/classify. The server only talks to
// those session interfaces, never to a model family. Chat answers of models that write boxes
// carry a "grounding" field (api.h grounding_field).
//
//   Server s(options);          // loads every model; errors name the directory at fault
//   int port = s.bind();        // options.port, or a free port when it is 0
//   std::thread t([&] { s.listen(); });
//   ...
//   s.shutdown();               // graceful: 503 to new requests, in-flight ones finish or are told
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "families/family.h"
#include "server/api.h"

namespace lumen::server {

struct ServerOptions {
  std::vector<std::string> models;  // checkpoint directories; the id is the directory's name
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0 = any free port
  int parallel = 4;                 // chat sequences decoded together, per chat model
  size_t max_queue = 64;            // waiting chat requests per model beyond the slots (429 past it)
  std::string api_key;              // when set, /v1/* needs "Authorization: Bearer <key>"
  std::string cors_origin;          // Access-Control-Allow-Origin; empty = no CORS headers
  double timeout_seconds = 600;     // per chat request, queue wait included
  double shutdown_grace_seconds = 30;
  size_t image_cache_entries = 64;  // per chat model
  int64_t prefill_chunk = 256;      // prompt rows one scheduler step prefills (0 = whole prompts)
  // How chat answers write boxes, for the response's "grounding" field: a format name, "none"
  // (no field), or empty for each family's default (llava_1_5 for LLaVA; KOSMOS-2 always
  // kosmos2). Requests may name another with {"lumen": {"box_format": ...}}.
  std::string box_format;
  std::string box_geometry = "processor";  // frame of those boxes: processor, identity, pad-square
  Limits limits;
  LoadOptions load;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws Error when it cannot.
  int bind();
  // Serves until shutdown() (or stop()); returns then.
  void listen();
  // Graceful stop: new requests get 503, queued and running ones get shutdown_grace_seconds
  // to finish (then end with an error the client sees), then the listener closes.
  void shutdown();
  std::vector<std::string> model_ids() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lumen::server
