// Closed-loop load against a running server: N clients each send a request, wait for the
// answer, and send the next, for a fixed time after a warm-up. Reports throughput and latency
// percentiles (and for Generate, time to first token and tokens/s) as one JSON object.
//
//   serving_load --server=127.0.0.1:8500 --rpc=classify --model=demo --image=a.png --clients=32
//   serving_load --rpc=generate --model=lm --prompt="Once upon a time" --max_new_tokens=32
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "elliptical/v1/inference_service.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:8500", "server address");
ABSL_FLAG(std::string, rpc, "classify", "classify or generate");
ABSL_FLAG(std::string, model, "", "model name");
ABSL_FLAG(std::string, image, "", "image file for classify");
ABSL_FLAG(std::string, prompt, "Once upon a time", "prompt for generate");
ABSL_FLAG(int, max_new_tokens, 32, "tokens per generate request");
ABSL_FLAG(int, clients, 8, "concurrent closed-loop clients");
ABSL_FLAG(double, warmup_s, 2, "seconds of load before measuring");
ABSL_FLAG(double, duration_s, 10, "seconds measured");
ABSL_FLAG(std::string, label, "", "free text copied into the output");

namespace {

using Clock = std::chrono::steady_clock;

struct Sample {
  double latency_s = 0;
  double ttft_s = 0;
  int tokens = 0;
  int code = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * (v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials());
  const bool generate = absl::GetFlag(FLAGS_rpc) == "generate";
  std::string image;
  if (!generate) {
    std::ifstream in(absl::GetFlag(FLAGS_image), std::ios::binary);
    image.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (image.empty()) {
      std::cerr << "--image is empty or unreadable\n";
      return 2;
    }
  }
  const auto start = Clock::now();
  const auto measure_from = start + std::chrono::duration<double>(absl::GetFlag(FLAGS_warmup_s));
  const auto stop_at = measure_from + std::chrono::duration<double>(absl::GetFlag(FLAGS_duration_s));
  std::mutex mu;
  std::vector<Sample> samples;
  std::vector<std::thread> clients;
  for (int c = 0; c < absl::GetFlag(FLAGS_clients); ++c) {
    clients.emplace_back([&] {
      auto stub = elliptical::v1::InferenceService::NewStub(channel);
      while (Clock::now() < stop_at) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
        const auto t0 = Clock::now();
        Sample s;
        if (generate) {
          elliptical::v1::GenerateRequest r;
          r.set_model_name(absl::GetFlag(FLAGS_model));
          r.set_prompt(absl::GetFlag(FLAGS_prompt));
          r.set_max_new_tokens(absl::GetFlag(FLAGS_max_new_tokens));
          auto reader = stub->Generate(&context, r);
          elliptical::v1::GenerateResponse m;
          while (reader->Read(&m)) {
            if (m.has_token()) {
              if (s.tokens++ == 0) s.ttft_s = std::chrono::duration<double>(Clock::now() - t0).count();
            }
          }
          s.code = reader->Finish().error_code();
        } else {
          elliptical::v1::ClassifyRequest r;
          r.set_model_name(absl::GetFlag(FLAGS_model));
          r.add_images()->set_encoded(image);
          elliptical::v1::ClassifyResponse response;
          s.code = stub->Classify(&context, r, &response).error_code();
        }
        const auto t1 = Clock::now();
        s.latency_s = std::chrono::duration<double>(t1 - t0).count();
        if (t0 >= measure_from && t1 <= stop_at) {
          std::lock_guard<std::mutex> lock(mu);
          samples.push_back(s);
        }
      }
    });
  }
  for (auto& t : clients) t.join();

  std::vector<double> latency, ttft;
  std::map<int, int> codes;
  int64_t tokens = 0;
  for (const Sample& s : samples) {
    ++codes[s.code];
    if (s.code != 0) continue;
    latency.push_back(s.latency_s);
    if (generate) {
      ttft.push_back(s.ttft_s);
      tokens += s.tokens;
    }
  }
  const double seconds = absl::GetFlag(FLAGS_duration_s);
  nlohmann::json out = {{"label", absl::GetFlag(FLAGS_label)},
                        {"rpc", absl::GetFlag(FLAGS_rpc)},
                        {"model", absl::GetFlag(FLAGS_model)},
                        {"clients", absl::GetFlag(FLAGS_clients)},
                        {"seconds", seconds},
                        {"ok_requests", latency.size()},
                        {"requests_per_second", latency.size() / seconds},
                        {"latency_p50_ms", 1e3 * Percentile(latency, 0.5)},
                        {"latency_p99_ms", 1e3 * Percentile(latency, 0.99)}};
  nlohmann::json by_code = nlohmann::json::object();
  for (auto [code, n] : codes) by_code[std::to_string(code)] = n;
  out["requests_by_code"] = by_code;
  if (generate) {
    out["tokens_per_second"] = tokens / seconds;
    out["ttft_p50_ms"] = 1e3 * Percentile(ttft, 0.5);
    out["ttft_p99_ms"] = 1e3 * Percentile(ttft, 0.99);
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
