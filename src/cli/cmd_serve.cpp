// `clipserve serve`: loads a model once and serves it over HTTP until SIGTERM/SIGINT, which
// drains the requests in flight before exiting.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/command.h"
#include "clipserve/detect.h"
#include "clipserve/engine.h"
#include "core/check.h"
#include "core/file.h"
#include "engine/metrics.h"
#include "server/model_set.h"
#include "server/routes_index.h"
#include "server/server.h"

namespace clipserve::cli {

namespace {

using json = nlohmann::json;

const char* kUsage =
    "usage: clipserve serve --model DIR [--model DIR2 ...] [--host 127.0.0.1] [--port 8080]\n"
    "                       [options]\n"
    "\n"
    "Serves the model over HTTP/1.1 (docs/server.md): POST /v1/embeddings (OpenAI and\n"
    "Infinity compatible, also /embeddings), POST /embed, POST /classify,\n"
    "PUT/GET/DELETE /labelsets/NAME, GET /health/live, GET /health/ready (200 once warmed up),\n"
    "GET /v1/models[/ID], GET /metrics (Prometheus), Immich's GET /ping + POST /predict,\n"
    "KServe v2 /v2/health/*, /v2/models/NAME[/ready|/infer].\n"
    "SIGTERM or SIGINT stops accepting connections, answers the requests in flight, and exits.\n"
    "\n"
    "options:\n"
    "  --model DIR            model directory (open_clip_config.json + .safetensors);\n"
    "                         repeat to serve several models, each with its own engine,\n"
    "                         batchers and queue, chosen by the request's model name (the\n"
    "                         first is the default; others get 404 listing the served ones)\n"
    "  --model-id NAME        name in /v1/models and responses (default: directory name);\n"
    "                         the i-th --model-id names the i-th --model. Clients may also\n"
    "                         name a model by its --model argument\n"
    "  --models FILE          more models from a JSON file: {\"models\": [{\"model\": DIR,\n"
    "                         \"id\", \"aliases\", \"precision\", \"backend\", \"threads\",\n"
    "                         \"max_batch\", \"max_wait_us\", \"max_queue\", \"label_cache\",\n"
    "                         \"unload_after\"}]} (per-model settings; docs/server.md)\n"
    "  --unload-after S       unload a model idle for S seconds (frees its memory); the next\n"
    "                         request for it reloads and warms it up, and its timings show\n"
    "                         the wait as model_load_ms (default: never)\n"
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

// One model to serve: where it is, its names, its engine options.
struct ServedModel {
  std::string path;
  std::vector<std::string> aliases;
  EngineOptions eo;
  double unload_after_s = 0;
};

// --models FILE: {"models": [{"model": DIR, "id", "aliases", "precision", "backend", "threads",
// "max_batch", "max_wait_us", "max_queue", "label_cache", "unload_after"}]}; what an entry
// leaves out comes from the command line.
std::vector<ServedModel> models_from_file(const std::string& file, const EngineOptions& base,
                                          double unload_after) {
  const std::string text = read_file_text(file);
  const json j = json::parse(text, nullptr, false);
  CS_CHECK_ARG(!j.is_discarded(), file, ": not valid JSON");
  CS_CHECK_ARG(j.is_object() && j.size() == 1 && j.contains("models") && j["models"].is_array() &&
                   !j["models"].empty(),
               file, ": expected {\"models\": [{\"model\": DIR, ...}, ...]}");
  std::vector<ServedModel> out;
  for (size_t i = 0; i < j["models"].size(); ++i) {
    const json& e = j["models"][i];
    const std::string where = file + ": models[" + std::to_string(i) + "]";
    CS_CHECK_ARG(e.is_object(), where, " must be an object");
    ServedModel m;
    m.eo = base;
    m.eo.model_id.clear();
    m.unload_after_s = unload_after;
    auto str = [&](const char* k) {
      CS_CHECK_ARG(e[k].is_string(), where, ".", k, " must be a string");
      return e[k].get<std::string>();
    };
    auto num = [&](const char* k, int min) {
      CS_CHECK_ARG(e[k].is_number_integer() && e[k].get<long long>() >= min &&
                       e[k].get<long long>() <= (1 << 30),
                   where, ".", k, " must be an integer >= ", min);
      return e[k].get<int>();
    };
    for (const auto& [k, v] : e.items()) {
      if (k == "model") {
        m.path = str("model");
      } else if (k == "id") {
        m.eo.model_id = str("id");
      } else if (k == "aliases") {
        CS_CHECK_ARG(v.is_array(), where, ".aliases must be an array of strings");
        for (const auto& a : v) {
          CS_CHECK_ARG(a.is_string(), where, ".aliases must be an array of strings");
          m.aliases.push_back(a.get<std::string>());
        }
      } else if (k == "precision") {
        m.eo.encoder.precision = str("precision");
      } else if (k == "backend") {
        m.eo.encoder.backend = str("backend");
      } else if (k == "threads") {
        m.eo.encoder.threads = num("threads", 0);
      } else if (k == "max_batch") {
        m.eo.max_batch = num("max_batch", 1);
      } else if (k == "max_wait_us") {
        m.eo.max_wait_us = num("max_wait_us", 0);
      } else if (k == "max_queue") {
        m.eo.max_queue = num("max_queue", 1);
      } else if (k == "label_cache") {
        m.eo.label_cache_entries = static_cast<size_t>(num("label_cache", 0));
      } else if (k == "unload_after") {
        CS_CHECK_ARG(v.is_number() && v.get<double>() >= 0 && v.get<double>() < 1e6, where,
                     ".unload_after must be a number of seconds >= 0 (0 = never)");
        m.unload_after_s = v.get<double>();
      } else {
        CS_THROW(kInvalidArgument, where, ": unknown key '", k,
                 "' (model, id, aliases, precision, backend, threads, max_batch, max_wait_us, "
                 "max_queue, label_cache, unload_after)");
      }
    }
    CS_CHECK_ARG(!m.path.empty(), where, " needs \"model\": the model directory");
    out.push_back(std::move(m));
  }
  return out;
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
      .option("models")
      .option("unload-after")
      .flag("no-warmup");
  args.parse(argc, argv);
  CS_CHECK_ARG(args.positional().empty(), "unexpected argument '", args.positional()[0],
               "' (see clipserve serve --help)");
  const auto model_args = args.values("model");
  CS_CHECK_ARG(!model_args.empty() || args.has("models"),
               "--model DIR (or --models FILE) is required");

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

  // Every model: its directory, names and engine options (command line, then --models).
  std::vector<ServedModel> served;
  const auto ids = args.values("model-id");
  CS_CHECK_ARG(ids.size() <= std::max<size_t>(1, model_args.size()), "more --model-id (",
               ids.size(), ") than --model (", model_args.size(), ")");
  const double unload_after =
      args.has("unload-after") ? seconds_option(args, "unload-after", 0) : 0;
  for (size_t i = 0; i < model_args.size(); ++i) {
    ServedModel m;
    m.path = model_args[i];
    m.eo = eo;
    m.eo.model_id = i < ids.size() ? ids[i] : "";
    m.unload_after_s = unload_after;
    served.push_back(std::move(m));
  }
  if (auto file = args.get("models")) {
    for (auto& m : models_from_file(*file, eo, unload_after)) served.push_back(std::move(m));
  }
  CS_CHECK_ARG(!served.empty(), "no models to serve");

  const auto t0 = std::chrono::steady_clock::now();
  // One registry for the server and every engine; with several models each series is
  // labelled model="ID". It outlives reloads, so counters keep counting.
  auto registry = std::make_shared<metrics::Registry>();
  server::ModelSet models(*registry);
  std::vector<std::shared_ptr<Engine>> engines;
  for (auto& m : served) {
    if (m.eo.model_id.empty()) {
      // Engine::load's naming rule.
      std::string dir = m.path;
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      m.eo.model_id = dir.substr(dir.find_last_of('/') + 1);
    }
    m.eo.metrics = registry;
    if (served.size() > 1) m.eo.metric_labels = {{"model", m.eo.model_id}};
    auto make = [path = m.path, eo = m.eo, max_image_pixels]() {
      auto encoder = Encoder::load(path, eo.encoder);
      auto fe = Engine::default_frontends(encoder->config(), max_image_pixels);
      return Engine::create(std::move(encoder), std::move(fe), eo);
    };
    std::shared_ptr<Engine> engine = make();
    server::ModelSpec spec;
    spec.names = {m.path};
    for (const auto& a : m.aliases) spec.names.push_back(a);
    spec.reload = make;
    spec.unload_after_s = m.unload_after_s;
    models.add(engine, std::move(spec));
    engines.push_back(std::move(engine));
  }

  std::unique_ptr<Detector> detector;
  if (auto dm = args.get("detect-model")) {
    DetectorOptions dopt;
    dopt.backend = eo.encoder.backend;
    dopt.precision = eo.encoder.precision;
    dopt.threads = eo.encoder.threads;
    dopt.max_batch = args.get_int("detect-batch", 4);
    dopt.warmup = eo.warmup;
    // Named like the embedding models: a directory by its name, a hub name as given.
    if (std::filesystem::is_directory(*dm)) {
      std::string dir = *dm;
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      dopt.model_id = dir.substr(dir.find_last_of('/') + 1);
    }
    detector = Detector::load(*dm, dopt);
    so.detector = detector.get();
  }
  server::Server server(models, *registry, so);
  std::unique_ptr<server::IndexRoutes> index_routes;
  if (auto dir = args.get("collections")) {
    index_routes =
        server::register_index_routes(server.http(), server.model_access(), *registry, {*dir});
    std::fprintf(stderr, "clipserve serve: %zu collections in %s\n", index_routes->names().size(),
                 dir->c_str());
  }
  const int port = server.bind();
  std::string loaded_ids;
  for (const auto& e : engines) loaded_ids += (loaded_ids.empty() ? "" : ", ") + e->model_id();
  std::fprintf(stderr, "clipserve serve: model%s %s loaded in %.1f s; listening on http://%s:%d\n",
               engines.size() > 1 ? "s" : "", loaded_ids.c_str(),
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
      for (auto& e : engines) e->warm_up();
      engines.clear();  // the ModelSet holds them now (and may unload them when idle)
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
