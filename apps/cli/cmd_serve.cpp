// lumen serve: the OpenAI-compatible HTTP server (src/server) over one or more checkpoints.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <thread>

#include "apps/cli/commands.h"
#include "apps/cli/generation_flags.h"
#include "server/server.h"

namespace lumen::cli {
namespace {

struct ServeArgs {
  server::ServerOptions opt;
  std::string quant = "stored";
  CommonFlags common;
};

// SIGTERM/SIGINT write one byte to this pipe; a watcher thread reads it and shuts the server
// down. A handler (not sigwait with blocked signals) because libraries start threads before
// main (OpenBLAS does) that would otherwise take the signal with its default action.
int g_signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int sig) {
  const char c = static_cast<char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &c, 1);  // async-signal-safe
}

int serve(ServeArgs& a) {
  apply_common_flags(a.common);
  a.opt.load = load_options_from(a.quant);
  LUMEN_CHECK(::pipe(g_signal_pipe) == 0, "could not create a pipe for signal handling");
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a dead server
  server::Server srv(a.opt);
  const int port = srv.bind();
  std::string ids;
  for (const auto& id : srv.model_ids()) ids += (ids.empty() ? "" : ", ") + id;
  std::fprintf(stderr, "lumen serve: %s on http://%s:%d/ (parallel %d%s)\n", ids.c_str(), a.opt.host.c_str(), port,
               a.opt.parallel, a.opt.api_key.empty() ? "" : ", API key required");
  std::fflush(stderr);
  std::thread watcher([&] {
    char sig = 0;
    while (::read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig != 0)
      std::fprintf(stderr, "lumen serve: %s, finishing in-flight requests\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv.shutdown();
  });
  srv.listen();
  // listen() also returns if the listener fails: wake the watcher so it can end.
  srv.shutdown();
  const char zero = 0;
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &zero, 1);
  watcher.join();
  std::fprintf(stderr, "lumen serve: stopped\n");
  return 0;
}

Register reg({"serve", "Serve models over an OpenAI-compatible HTTP API, with a web page at /",
              [](CLI::App* cmd) -> std::function<int()> {
                auto a = std::make_shared<ServeArgs>();
                auto& o = a->opt;
                cmd->add_option("--model,-m", o.models, "Checkpoint directory; repeat to serve several (id = its name)")
                    ->required();
                cmd->add_option("--host", o.host, "Address to listen on")->capture_default_str();
                cmd->add_option("--port", o.port, "Port to listen on (0 = any free port)")->capture_default_str();
                cmd->add_option("--parallel,-P", o.parallel, "Chat sequences decoded together per model")
                    ->capture_default_str();
                cmd->add_option("--prefill-chunk", o.prefill_chunk,
                                "Prompt tokens one step prefills at most, between the other sequences' decode "
                                "steps (0 = whole prompts)")
                    ->capture_default_str()
                    ->check(CLI::NonNegativeNumber);
                cmd->add_option("--api-key", o.api_key, "Require 'Authorization: Bearer KEY' on /v1/*");
                cmd->add_option("--max-body-bytes", o.limits.max_body_bytes, "Largest request body (413 beyond)")
                    ->capture_default_str();
                cmd->add_option("--max-image-bytes", o.limits.max_image_bytes,
                                "Largest image after base64 decoding (413 beyond)")
                    ->capture_default_str();
                cmd->add_option("--max-image-pixels", o.limits.max_image_pixels,
                                "Largest width x height of an image, checked before decoding")
                    ->capture_default_str();
                cmd->add_option("--max-tokens", o.limits.max_tokens, "Largest max_tokens a request may ask for")
                    ->capture_default_str();
                cmd->add_option("--max-queue", o.max_queue, "Chat requests that may wait for a slot (429 beyond)")
                    ->capture_default_str();
                cmd->add_option("--timeout", o.timeout_seconds, "Seconds a chat request may take, queue included")
                    ->capture_default_str();
                cmd->add_option("--shutdown-grace", o.shutdown_grace_seconds,
                                "Seconds in-flight requests get to finish after SIGTERM")
                    ->capture_default_str();
                cmd->add_flag("--allow-local-files", o.limits.allow_local_files,
                              "Let image_url name a file on this machine (off: data: URIs only)");
                cmd->add_option("--cors", o.cors_origin, "Send Access-Control-Allow-Origin: ORIGIN (off by default)");
                cmd->add_option("--box-format", o.box_format,
                                "Box format of chat answers for the response's \"grounding\" field: a format of "
                                "`lumen ground --help`, or none (default: the family's, llava_1_5 for LLaVA)");
                cmd->add_option("--box-geometry", o.box_geometry, "Frame of those boxes: processor, identity or pad-square")
                    ->capture_default_str();
                add_quant_flag(cmd, &a->quant);
                add_common_flags(cmd, &a->common);
                cmd->footer(
                    "Endpoints: POST /v1/chat/completions (chat models; KOSMOS-2 one request at a time), POST\n"
                    "/v1/embeddings and POST /v1/classify (image/text dual encoders), GET /v1/models, /health,\n"
                    "/metrics, and a web page at /. Chat answers of models that write boxes carry\n"
                    "\"lumen\": {\"grounding\": ...} (entities, boxes in the last image's pixels; see README).\n\n"
                    "Examples:\n"
                    "  lumen serve -m llava-1.5-7b-hf -m clip-vit-base-patch32 --port 8080\n"
                    "  curl localhost:8080/v1/chat/completions -H 'Content-Type: application/json' \\\n"
                    "    -d '{\"model\": \"llava-1.5-7b-hf\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}'");
                return [a] { return serve(*a); };
              }});

}  // namespace
}  // namespace lumen::cli
