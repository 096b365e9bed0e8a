// elliptical-loadgen: load against a running server, closed or open loop, one point or a sweep.
//
//   elliptical-loadgen --rpc=classify --model=digits-vit --image=docs/examples/digit-3.png \
//                      --mode=closed --sweep=1,4,16,32 --duration_s=10 --out=sweep.json
//   elliptical-loadgen --rpc=generate --model=lm --mode=open --rate=20 --requests=500
//   elliptical-loadgen ... --tls_ca_file=ca.pem --token_file=token.txt   (TLS and a token)
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "client/common/channel_flags.h"
#include "client/loadgen/load_generator.h"

ABSL_FLAG(std::string, server, "localhost:8500", "server address");
ABSL_FLAG(std::string, rpc, "classify", "classify, segment or generate");
ABSL_FLAG(std::string, model, "", "model name (required)");
ABSL_FLAG(std::string, image, "", "PNG/JPEG file sent by classify and segment");
ABSL_FLAG(std::string, prompt, "Once upon a time", "generate: the prompt");
ABSL_FLAG(int, max_new_tokens, 32, "generate: tokens per request");
ABSL_FLAG(std::string, mode, "closed", "closed (N clients) or open (Poisson arrivals at --rate)");
ABSL_FLAG(int, concurrency, 8, "closed loop: concurrent clients");
ABSL_FLAG(double, rate, 10, "open loop: mean requests per second");
ABSL_FLAG(std::string, sweep, "", "comma-separated concurrencies (closed) or rates (open) to run in turn");
ABSL_FLAG(double, warmup_s, 2, "seconds of load before measuring");
ABSL_FLAG(double, duration_s, 10, "seconds measured per point");
ABSL_FLAG(int64_t, requests, 0, "measure this many requests instead of a duration");
ABSL_FLAG(double, timeout_s, 60, "deadline of each request");
ABSL_FLAG(std::string, out, "", "write the reports as a JSON array to this file");
ABSL_FLAG(bool, progress, true, "print a progress line every second");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures an elliptical-attention model server: throughput, latency percentiles, errors by\n"
      "code, and for generate time to first token, time per output token and tokens/s.");
  absl::ParseCommandLine(argc, argv);
  elliptical::loadgen::LoadOptions o;
  o.rpc = absl::GetFlag(FLAGS_rpc);
  o.model = absl::GetFlag(FLAGS_model);
  o.prompt = absl::GetFlag(FLAGS_prompt);
  o.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  o.open_loop = absl::GetFlag(FLAGS_mode) == "open";
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.rate = absl::GetFlag(FLAGS_rate);
  o.warmup_s = absl::GetFlag(FLAGS_warmup_s);
  o.duration_s = absl::GetFlag(FLAGS_duration_s);
  o.requests = absl::GetFlag(FLAGS_requests);
  o.timeout_s = absl::GetFlag(FLAGS_timeout_s);
  o.progress = absl::GetFlag(FLAGS_progress);
  if (o.model.empty() || (o.rpc != "classify" && o.rpc != "segment" && o.rpc != "generate") ||
      (absl::GetFlag(FLAGS_mode) != "closed" && absl::GetFlag(FLAGS_mode) != "open")) {
    std::cerr << "need --model, --rpc=classify|segment|generate and --mode=closed|open (see --help)\n";
    return 2;
  }
  if (o.rpc != "generate") {
    std::ifstream in(absl::GetFlag(FLAGS_image), std::ios::binary);
    o.image_bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (o.image_bytes.empty()) {
      std::cerr << "--image is missing or unreadable: " << absl::GetFlag(FLAGS_image) << "\n";
      return 2;
    }
  }
  std::vector<double> points;
  for (absl::string_view p : absl::StrSplit(absl::GetFlag(FLAGS_sweep), ',', absl::SkipEmpty())) {
    double v = 0;
    if (!absl::SimpleAtod(p, &v) || v <= 0) {
      std::cerr << "bad --sweep value " << p << "\n";
      return 2;
    }
    points.push_back(v);
  }
  if (points.empty()) points.push_back(o.open_loop ? o.rate : o.concurrency);

  const elliptical::client::ChannelOptions channel_options =
      elliptical::client::ChannelOptionsFromFlags(absl::GetFlag(FLAGS_server));
  auto made = elliptical::client::MakeChannel(channel_options);
  if (!made.ok()) {
    std::cerr << "error: " << made.status().message() << "\n";
    return 2;
  }
  const std::shared_ptr<grpc::Channel> channel = *std::move(made);
  std::string json = "[";
  bool any_ok = false;
  for (size_t i = 0; i < points.size(); ++i) {
    if (o.open_loop) {
      o.rate = points[i];
    } else {
      o.concurrency = static_cast<int>(points[i]);
    }
    const elliptical::loadgen::LoadReport report = elliptical::loadgen::RunLoad(channel, o);
    std::cout << elliptical::loadgen::Summary(report) << std::flush;
    json += (i ? ",\n" : "\n") + elliptical::loadgen::ToJson(report);
    any_ok = any_ok || report.ok > 0;
  }
  json += "\n]\n";
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) std::ofstream(out) << json;
  return any_ok ? 0 : 1;
}
