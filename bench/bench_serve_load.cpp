// Load test of `clipserve serve`'s stack: starts the engine and HTTP server in-process on a free
// port, measures the engine's own batch-16 throughput (decode + preprocess + encode), then N
// concurrent keep-alive HTTP clients each sending one image (or one text) per request; reports
// throughput, p50/p99 latency, the batch sizes the batcher formed, and first-request latency.
//
//   bench_serve_load --model DIR [--image FILE] [--clients 16] [--seconds 20] [--json]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "clipserve/engine.h"
#include "server/server.h"

namespace {

using Clock = std::chrono::steady_clock;
using clipserve::Engine;
using clipserve::ImageInput;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * (v.size() - 1) + 0.5));
  return v[i];
}

struct LoadResult {
  double seconds = 0;
  size_t ok = 0, failed = 0;
  std::vector<double> latencies_ms;
  double per_s() const { return ok / seconds; }
};

// `clients` threads, each with its own keep-alive connection, posting until `seconds` pass.
LoadResult run_load(int port, int clients, double seconds, const std::string& path,
                    const std::string& body, const std::string& content_type) {
  std::vector<std::vector<double>> lat(clients);
  std::atomic<size_t> ok{0}, failed{0};
  const auto start = Clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_read_timeout(60, 0);
      while (Clock::now() < deadline) {
        const auto t0 = Clock::now();
        auto r = cli.Post(path, body, content_type);
        if (r && r->status == 200) {
          lat[c].push_back(ms_since(t0));
          ok++;
        } else {
          failed++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  LoadResult res;
  res.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  res.ok = ok;
  res.failed = failed;
  for (auto& l : lat) res.latencies_ms.insert(res.latencies_ms.end(), l.begin(), l.end());
  return res;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, image = CLIPSERVE_SHARED_DIR "/fixtures/images/photo_640x425.jpg";
  int clients = 16, max_batch = 16, max_wait_us = 5000;
  double seconds = 20, text_seconds = 10;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    const std::string a = argv[i];
    if (a == "--model")
      model = next();
    else if (a == "--image")
      image = next();
    else if (a == "--clients")
      clients = std::stoi(next());
    else if (a == "--seconds")
      seconds = std::stod(next());
    else if (a == "--text-seconds")
      text_seconds = std::stod(next());
    else if (a == "--max-batch")
      max_batch = std::stoi(next());
    else if (a == "--max-wait-us")
      max_wait_us = std::stoi(next());
    else if (a == "--json")
      as_json = true;
    else {
      std::fprintf(stderr,
                   "usage: bench_serve_load --model DIR [--image FILE] [--clients N] "
                   "[--seconds S] [--text-seconds S] [--max-batch N] [--max-wait-us N] [--json]\n");
      return 2;
    }
  }
  if (model.empty()) {
    std::fprintf(stderr, "bench_serve_load: --model DIR is required\n");
    return 2;
  }
  std::ifstream in(image, std::ios::binary);
  const std::vector<uint8_t> jpeg{std::istreambuf_iterator<char>(in), {}};
  if (jpeg.empty()) {
    std::fprintf(stderr, "bench_serve_load: cannot read %s\n", image.c_str());
    return 2;
  }
  const std::string jpeg_body(jpeg.begin(), jpeg.end());

  clipserve::EngineOptions eo;
  eo.max_batch = max_batch;
  eo.max_wait_us = max_wait_us;
  eo.max_queue = std::max(256, 4 * clients);
  const auto t_load = Clock::now();
  auto engine = Engine::load(model, eo);  // includes warm-up
  const double load_ms = ms_since(t_load);

  clipserve::server::ServerOptions so;
  so.port = 0;
  so.http_threads = std::max(64, 2 * clients);
  clipserve::server::Server server(*engine, so);
  const int port = server.bind();
  std::thread server_thread([&] { server.run(); });

  nlohmann::json out;
  out["model"] = engine->model_id();
  out["image"] = image;
  out["clients"] = clients;
  out["max_batch"] = max_batch;
  out["max_wait_us"] = max_wait_us;
  out["load_and_warmup_ms"] = load_ms;

  // First request after ready, then the steady state of the same single request.
  {
    httplib::Client cli("127.0.0.1", port);
    auto t0 = Clock::now();
    cli.Post("/embed", jpeg_body, "image/jpeg");
    const double first = ms_since(t0);
    std::vector<double> steady;
    for (int i = 0; i < 20; ++i) {
      t0 = Clock::now();
      cli.Post("/embed", jpeg_body, "image/jpeg");
      steady.push_back(ms_since(t0));
    }
    out["first_request_ms"] = first;
    out["steady_single_request_median_ms"] = percentile(steady, 50);
    out["first_over_steady"] = first / percentile(steady, 50);
  }

  // The engine's own batch-16 throughput: one request of 16 encoded images at a time.
  auto engine_batch = [&](int rounds) {
    std::vector<double> per_round;
    for (int r = 0; r < rounds; ++r) {
      std::vector<ImageInput> batch;
      for (int i = 0; i < 16; ++i) batch.push_back(ImageInput::encoded(jpeg));
      const auto t0 = Clock::now();
      engine->embed_images(std::move(batch));
      per_round.push_back(ms_since(t0));
    }
    return 16.0 / (percentile(per_round, 50) / 1000.0);
  };
  auto engine_text_batch = [&](int rounds) {
    std::vector<double> per_round;
    for (int r = 0; r < rounds; ++r) {
      std::vector<std::string> batch;
      for (int i = 0; i < 16; ++i) batch.push_back("a photo of a dog number " + std::to_string(i));
      const auto t0 = Clock::now();
      engine->embed_texts(std::move(batch));
      per_round.push_back(ms_since(t0));
    }
    return 16.0 / (percentile(per_round, 50) / 1000.0);
  };
  const double engine_img_before = engine_batch(8);

  const auto c0 = engine->counters();
  const auto images = run_load(port, clients, seconds, "/embed", jpeg_body, "image/jpeg");
  const auto c1 = engine->counters();
  const double engine_img_after = engine_batch(8);
  const double engine_img = std::max(engine_img_before, engine_img_after);

  const double engine_txt = engine_text_batch(8);
  const std::string text_body = R"({"input":"a photo of a dog on the beach"})";
  const auto c2 = engine->counters();
  const auto texts =
      run_load(port, clients, text_seconds, "/v1/embeddings", text_body, "application/json");
  const auto c3 = engine->counters();

  auto report = [&](const char* key, const LoadResult& r, double engine_rate, uint64_t items,
                    uint64_t batches) {
    out[key] = {{"requests_ok", r.ok},
                {"requests_failed", r.failed},
                {"seconds", r.seconds},
                {"per_s", r.per_s()},
                {"p50_ms", percentile(r.latencies_ms, 50)},
                {"p99_ms", percentile(r.latencies_ms, 99)},
                {"engine_batch16_per_s", engine_rate},
                {"ratio_to_engine_batch16", r.per_s() / engine_rate},
                {"batches", batches},
                {"mean_batch", batches ? double(items) / batches : 0.0}};
  };
  report("images", images, engine_img, c1.image_items - c0.image_items,
         c1.image_batches - c0.image_batches);
  out["images"]["engine_batch16_before_per_s"] = engine_img_before;
  out["images"]["engine_batch16_after_per_s"] = engine_img_after;
  report("texts", texts, engine_txt, c3.text_items - c2.text_items,
         c3.text_batches - c2.text_batches);

  // The batch-size histogram as /metrics shows it.
  {
    httplib::Client cli("127.0.0.1", port);
    auto m = cli.Get("/metrics");
    std::string hist;
    if (m) {
      size_t pos = 0;
      while ((pos = m->body.find("clipserve_batch_size_bucket{tower=\"image\"", pos)) !=
             std::string::npos) {
        const size_t end = m->body.find('\n', pos);
        hist += m->body.substr(pos, end - pos) + "\n";
        pos = end;
      }
    }
    out["image_batch_histogram"] = hist;
  }
  server.stop();
  server_thread.join();

  if (as_json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("model %s, %d clients, max_batch %d, max_wait %d us, load+warm-up %.0f ms\n",
              out["model"].get<std::string>().c_str(), clients, max_batch, max_wait_us, load_ms);
  std::printf("first request after ready %.1f ms, steady single request %.1f ms (x%.2f)\n",
              out["first_request_ms"].get<double>(),
              out["steady_single_request_median_ms"].get<double>(),
              out["first_over_steady"].get<double>());
  for (const char* k : {"images", "texts"}) {
    const auto& r = out[k];
    std::printf(
        "%-6s HTTP %.1f/s (p50 %.1f ms, p99 %.1f ms, %zu ok, %zu failed), engine batch-16 "
        "%.1f/s, ratio %.2f, mean batch %.1f over %llu batches\n",
        k, r["per_s"].get<double>(), r["p50_ms"].get<double>(), r["p99_ms"].get<double>(),
        r["requests_ok"].get<size_t>(), r["requests_failed"].get<size_t>(),
        r["engine_batch16_per_s"].get<double>(), r["ratio_to_engine_batch16"].get<double>(),
        r["mean_batch"].get<double>(), (unsigned long long)r["batches"].get<uint64_t>());
  }
  std::printf("%s", out["image_batch_histogram"].get<std::string>().c_str());
  return 0;
}
