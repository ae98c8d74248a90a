// `clipserve serve`: loads a model once and serves it over HTTP until SIGTERM/SIGINT, which
// drains the requests in flight before exiting.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "cli/command.h"
#include "clipserve/engine.h"
#include "core/check.h"
#include "server/routes_index.h"
#include "server/server.h"

namespace clipserve::cli {

namespace {

const char* kUsage =
    "usage: clipserve serve --model DIR [--host 127.0.0.1] [--port 8080] [options]\n"
    "\n"
    "Serves the model over HTTP/1.1 (docs/server.md): POST /v1/embeddings (OpenAI compatible),\n"
    "POST /embed, POST /classify, PUT/GET/DELETE /labelsets/NAME, GET /health/live,\n"
    "GET /health/ready (200 once warmed up), GET /v1/models, GET /metrics (Prometheus).\n"
    "SIGTERM or SIGINT stops accepting connections, answers the requests in flight, and exits.\n"
    "\n"
    "options:\n"
    "  --model DIR            model directory (open_clip_config.json + .safetensors)\n"
    "  --model-id NAME        name in /v1/models and responses (default: directory name)\n"
    "  --host H               address to listen on (default 127.0.0.1)\n"
    "  --port P               port (default 8080; 0 = any free port, printed on stderr)\n"
    "  --api-key KEY          require 'Authorization: Bearer KEY' (except /health/*); the\n"
    "                         environment variable CLIPSERVE_API_KEY works too\n"
    "  --backend B            cpu (oneDNN, default) or reference\n"
    "  --precision P          fp32 (default) or bf16\n"
    "  --threads N            encoder threads (default: all cores)\n"
    "  --preprocess-threads N image decoding threads (default: all cores)\n"
    "  --max-batch N          largest batch per tower (default 16)\n"
    "  --max-wait-us N        coalescing window while busy (default 5000)\n"
    "  --max-queue N          items admitted per tower before 429 (default 256)\n"
    "  --max-body-mb N        request body limit, larger gets 413 (default 32)\n"
    "  --http-threads N       concurrent connections served (default 64)\n"
    "  --label-cache N        cached label prompt features (default 20000)\n"
    "  --no-warmup            report ready at once (first requests will be slower)\n"
    "  --collections DIR      serve the collections in DIR under /indexes (new ones are\n"
    "                         created there; docs/collections.md)\n";

int run_serve(int argc, char** argv) {
  Args args;
  args.option("model")
      .option("model-id")
      .option("host")
      .option("port")
      .option("api-key")
      .option("backend")
      .option("precision")
      .option("threads")
      .option("preprocess-threads")
      .option("max-batch")
      .option("max-wait-us")
      .option("max-queue")
      .option("max-body-mb")
      .option("http-threads")
      .option("label-cache")
      .option("collections")
      .flag("no-warmup");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.positional().empty(), "unexpected argument '", args.positional()[0],
               "' (see clipserve serve --help)");
  const auto model = args.get("model");
  CS_CHECK_ARG(model.has_value(), "--model DIR is required");

  EngineOptions eo;
  eo.encoder.backend = args.get_or("backend", "cpu");
  eo.encoder.precision = args.get_or("precision", "fp32");
  eo.encoder.threads = args.get_int("threads", 0);
  eo.preprocess_threads = args.get_int("preprocess-threads", 0);
  eo.max_batch = args.get_int("max-batch", 16);
  eo.max_wait_us = args.get_int("max-wait-us", 5000);
  eo.max_queue = args.get_int("max-queue", 256);
  eo.label_cache_entries = static_cast<size_t>(args.get_int("label-cache", 20000));
  eo.warmup = !args.has("no-warmup");
  eo.model_id = args.get_or("model-id", "");
  CS_CHECK_ARG(eo.max_batch >= 1 && eo.max_queue >= 1 && eo.max_wait_us >= 0,
               "--max-batch and --max-queue must be >= 1, --max-wait-us >= 0");

  server::ServerOptions so;
  so.host = args.get_or("host", "127.0.0.1");
  so.port = args.get_int("port", 8080);
  CS_CHECK_ARG(so.port >= 0 && so.port <= 65535, "--port must be 0..65535");
  const int body_mb = args.get_int("max-body-mb", 32);
  CS_CHECK_ARG(body_mb >= 1, "--max-body-mb must be >= 1");
  so.max_body_bytes = static_cast<size_t>(body_mb) << 20;
  so.http_threads = args.get_int("http-threads", 64);
  so.api_key = args.get_or("api-key", "");
  if (so.api_key.empty()) {
    if (const char* env = std::getenv("CLIPSERVE_API_KEY")) so.api_key = env;
  }

  // Block the stop signals in every thread (threads inherit the mask); one thread sigwaits.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const auto t0 = std::chrono::steady_clock::now();
  auto encoder = Encoder::load(*model, eo.encoder);
  if (eo.model_id.empty()) {
    // Engine::load's naming rule, without its synchronous warm-up.
    std::string dir = *model;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    eo.model_id = dir.substr(dir.find_last_of('/') + 1);
  }
  auto fe = Engine::default_frontends(encoder->config());
  auto engine = Engine::create(std::move(encoder), std::move(fe), eo);

  server::Server server(*engine, so);
  std::unique_ptr<server::IndexRoutes> index_routes;
  if (auto dir = args.get("collections")) {
    index_routes = server::register_index_routes(server.http(), *engine, {*dir});
    std::fprintf(stderr, "clipserve serve: %zu collections in %s\n", index_routes->names().size(),
                 dir->c_str());
  }
  const int port = server.bind();
  std::fprintf(stderr, "clipserve serve: model %s loaded in %.1f s; listening on http://%s:%d\n",
               engine->model_id().c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
               so.host.c_str(), port);

  std::atomic<bool> got_signal{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (got_signal.exchange(true)) return;  // our own wake-up below
    std::fprintf(stderr, "clipserve serve: %s: draining requests in flight\n",
                 sig == SIGTERM  ? "SIGTERM"
                 : sig == SIGINT ? "SIGINT"
                                 : "stop");
    server.stop();
  });
  int status = 0;
  std::thread warm_thread([&] {
    const auto w0 = std::chrono::steady_clock::now();
    try {
      engine->warm_up();
      std::fprintf(stderr, "clipserve serve: ready (warm-up %.1f s)\n",
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "clipserve serve: warm-up failed: %s\n", e.what());
      status = 1;
      server.stop();
    }
  });

  const bool listened = server.run();
  if (!listened) status = 1;
  server.stop();
  if (!got_signal.exchange(true)) {
    pthread_kill(signal_thread.native_handle(), SIGTERM);  // wakes the sigwait
  }
  signal_thread.join();
  warm_thread.join();
  std::fprintf(stderr, "clipserve serve: stopped\n");
  return status;
}

const bool registered = register_command(
    {"serve", "serve embeddings and zero-shot classification over HTTP", kUsage, run_serve});

}  // namespace

}  // namespace clipserve::cli
