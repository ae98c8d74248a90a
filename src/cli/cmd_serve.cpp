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
#include "clipserve/detect.h"
#include "clipserve/engine.h"
#include "core/check.h"
#include "server/routes_index.h"
#include "server/server.h"

namespace clipserve::cli {

namespace {

const char* kUsage =
    "usage: clipserve serve --model DIR [--host 127.0.0.1] [--port 8080] [options]\n"
    "\n"
    "Serves the model over HTTP/1.1 (docs/server.md): POST /v1/embeddings (OpenAI and\n"
    "Infinity compatible, also /embeddings), POST /embed, POST /classify,\n"
    "PUT/GET/DELETE /labelsets/NAME, GET /health/live, GET /health/ready (200 once warmed up),\n"
    "GET /v1/models[/ID], GET /metrics (Prometheus), Immich's GET /ping + POST /predict,\n"
    "KServe v2 /v2/health/*, /v2/models/NAME[/ready|/infer].\n"
    "SIGTERM or SIGINT stops accepting connections, answers the requests in flight, and exits.\n"
    "\n"
    "options:\n"
    "  --model DIR            model directory (open_clip_config.json + .safetensors)\n"
    "  --model-id NAME        name in /v1/models and responses (default: directory name);\n"
    "                         clients may also name the model by the --model argument\n"
    "  --allow-url-host H     fetch image URLs from host H (a name, *.suffix, an address or\n"
    "                         a CIDR range; repeatable). Off by default. Loopback/private\n"
    "                         addresses are refused unless listed as addresses or ranges\n"
    "  --url-max-mb N         largest image fetched by URL (default 32)\n"
    "  --url-timeout-ms N     time limit of one URL fetch, redirects included (default 10000)\n"
    "  --host H               address to listen on (default 127.0.0.1)\n"
    "  --port P               port (default 8080; 0 = any free port, printed on stderr)\n"
    "  --api-key KEY          require 'Authorization: Bearer KEY' (except /health/*); the\n"
    "                         environment variable CLIPSERVE_API_KEY works too\n"
    "  --allowed-host NAME    accept this Host header name too (repeatable; '*' = any). On\n"
    "                         a loopback address only loopback names are accepted by default\n"
    "  --cors-origin ORIGIN   allow cross-origin requests from ORIGIN (scheme://host:port,\n"
    "                         repeatable, '*' = any); other Origins get 403\n"
    "  --backend B            cpu (oneDNN, default) or reference\n"
    "  --precision P          fp32 (default), bf16 or int8\n"
    "  --threads N            encoder threads (default: all cores)\n"
    "  --preprocess-threads N image decoding threads (default: all cores)\n"
    "  --max-batch N          largest batch per tower (default 16)\n"
    "  --max-wait-us N        coalescing window while busy (default 5000)\n"
    "  --max-queue N          items admitted per tower before 429 (default 256)\n"
    "  --max-body-mb N        request body limit, larger gets 413 (default 32)\n"
    "  --http-threads N       requests handled at once (default 64); idle and slow\n"
    "                         connections hold no thread\n"
    "  --max-connections N    open connections; beyond, 503 and close (default 1024)\n"
    "  --request-timeout-s S  a whole request (headers + body) must arrive within S seconds,\n"
    "                         else 408 and close (default 30)\n"
    "  --idle-timeout-s S     keep-alive connections idle this long are closed (default 5)\n"
    "  --write-timeout-s S    a client must read its response within S seconds (default 30)\n"
    "  --shutdown-timeout-s S on SIGTERM, requests in flight may run S seconds (default 10)\n"
    "  --max-items N          texts + images per request (default 256)\n"
    "  --max-image-pixels N   decoded pixels of one image, more gets 413 (default Pillow's\n"
    "                         178956970); bounds the memory and time of one decode\n"
    "  --max-text-bytes N     bytes of one text, label or template (default 16384)\n"
    "  --max-prompts N        labels x templates per request or label set (default 100000)\n"
    "  --max-prompt-bytes N   bytes of those prompts together (default 16777216)\n"
    "  --max-label-sets N     registered label sets (default 1000)\n"
    "  --label-cache N        cached label prompt features (default 20000)\n"
    "  --no-warmup            report ready at once (first requests will be slower)\n"
    "  --detect-model M       also serve POST /detect with this OWL-ViT model (directory or\n"
    "                         hub name; loaded and warmed up before listening; docs/detect.md)\n"
    "  --detect-batch N       largest detection vision batch (default 4)\n"
    "  --collections DIR      serve the collections in DIR under /indexes (new ones are\n"
    "                         created there; docs/collections.md)\n";

double seconds_option(const Args& args, const char* name, double fallback) {
  if (!args.has(name)) return fallback;
  const std::string v = args.get_or(name, "");
  char* end = nullptr;
  const double s = std::strtod(v.c_str(), &end);
  CS_CHECK_ARG(!v.empty() && end && *end == 0 && s > 0 && s < 1e6, "--", name,
               " must be a positive number of seconds, not '", v, "'");
  return s;
}

int run_serve(int argc, char** argv) {
  Args args;
  args.option("model")
      .option("model-id")
      .option("allow-url-host")
      .option("url-max-mb")
      .option("url-timeout-ms")
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
      .option("allowed-host")
      .option("max-items")
      .option("max-image-pixels")
      .option("max-text-bytes")
      .option("max-prompts")
      .option("max-prompt-bytes")
      .option("max-label-sets")
      .option("cors-origin")
      .option("max-connections")
      .option("request-timeout-s")
      .option("idle-timeout-s")
      .option("write-timeout-s")
      .option("shutdown-timeout-s")
      .option("label-cache")
      .option("detect-model")
      .option("detect-batch")
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
  so.max_connections = args.get_int("max-connections", 1024);
  CS_CHECK_ARG(so.http_threads >= 1 && so.max_connections >= 1,
               "--http-threads and --max-connections must be >= 1");
  so.request_timeout_s = seconds_option(args, "request-timeout-s", 30);
  so.idle_timeout_s = seconds_option(args, "idle-timeout-s", 5);
  so.write_timeout_s = seconds_option(args, "write-timeout-s", 30);
  so.shutdown_timeout_s = seconds_option(args, "shutdown-timeout-s", 10);
  auto bound = [&](const char* name, size_t fallback) {
    const int v = args.get_int(name, static_cast<int>(fallback));
    CS_CHECK_ARG(v >= 1, "--", name, " must be >= 1");
    return static_cast<size_t>(v);
  };
  so.bounds.max_items = bound("max-items", so.bounds.max_items);
  so.bounds.max_text_bytes = bound("max-text-bytes", so.bounds.max_text_bytes);
  so.bounds.max_prompts = bound("max-prompts", so.bounds.max_prompts);
  so.bounds.max_prompt_bytes = bound("max-prompt-bytes", so.bounds.max_prompt_bytes);
  so.bounds.max_label_sets = bound("max-label-sets", so.bounds.max_label_sets);
  uint64_t max_image_pixels = 0;
  if (args.has("max-image-pixels")) {
    const std::string v = args.get_or("max-image-pixels", "");
    char* end = nullptr;
    max_image_pixels = std::strtoull(v.c_str(), &end, 10);
    CS_CHECK_ARG(!v.empty() && end && *end == 0 && max_image_pixels >= 1,
                 "--max-image-pixels must be a positive integer, not '", v, "'");
  }
  so.allowed_hosts = args.values("allowed-host");
  so.cors_origins = args.values("cors-origin");
  so.model_names = {*model};
  for (const auto& h : args.values("allow-url-host")) {
    for (auto& one : split_comma_list(h)) {
      server::UrlFetcher::check_allow_entry(one);
      so.url_fetch.allow.push_back(std::move(one));
    }
  }
  const int url_mb = args.get_int("url-max-mb", 32);
  CS_CHECK_ARG(url_mb >= 1, "--url-max-mb must be >= 1");
  so.url_fetch.max_bytes = static_cast<size_t>(url_mb) << 20;
  so.url_fetch.timeout_ms = args.get_int("url-timeout-ms", 10000);
  CS_CHECK_ARG(so.url_fetch.timeout_ms >= 1, "--url-timeout-ms must be >= 1");
  if (args.has("api-key")) {
    so.api_key = args.get_or("api-key", "");
    CS_CHECK_ARG(!so.api_key.empty(), "--api-key must not be empty (omit it to serve without)");
  } else if (const char* env = std::getenv("CLIPSERVE_API_KEY")) {
    so.api_key = env;
  }
  if (so.api_key.empty() && so.host != "127.0.0.1" && so.host != "localhost" && so.host != "::1") {
    std::fprintf(stderr,
                 "clipserve serve: warning: listening on %s without --api-key: anyone who can "
                 "reach this address can use the server\n",
                 so.host.c_str());
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
  auto fe = Engine::default_frontends(encoder->config(), max_image_pixels);
  auto engine = Engine::create(std::move(encoder), std::move(fe), eo);

  std::unique_ptr<Detector> detector;
  if (auto dm = args.get("detect-model")) {
    DetectorOptions dopt;
    dopt.backend = eo.encoder.backend;
    dopt.precision = eo.encoder.precision;
    dopt.threads = eo.encoder.threads;
    dopt.max_batch = args.get_int("detect-batch", 4);
    dopt.warmup = eo.warmup;
    detector = Detector::load(*dm, dopt);
    so.detector = detector.get();
  }
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

  const bool clean = server.run();
  server.stop();
  if (!clean) {
    // Handlers still running past --shutdown-timeout-s cannot be interrupted: exit anyway.
    std::fprintf(stderr,
                 "clipserve serve: requests still running after %g s; exiting without them\n",
                 so.shutdown_timeout_s);
    std::fflush(stderr);
    std::_Exit(1);
  }
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
