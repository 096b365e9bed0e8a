// Drives a server with one RPC, closed loop (N clients, each sending its next request when the
// previous one is answered) or open loop (requests at a fixed mean rate with Poisson arrivals,
// whatever the answers), and measures what a user of the server sees.
//
// Open-loop latency is counted from each request's scheduled send time, so a server (or client)
// that falls behind is charged for the wait (no coordinated omission).
//
// The load starts once the channel is connected. The calls are fail-fast, as a user's are: on a
// channel still connecting, one failed first attempt would fail every call gRPC starts during
// its reconnect backoff (1 s), which measures the first connection, not the server under load.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "elliptical/v1/inference_service.grpc.pb.h"

namespace elliptical::loadgen {

struct LoadOptions {
  std::string rpc = "classify";  // classify | segment | generate
  std::string model;
  std::string image_bytes;       // classify, segment
  std::string prompt = "Once upon a time";
  int max_new_tokens = 32;
  bool open_loop = false;
  int concurrency = 8;           // closed loop
  double rate = 10;              // open loop, requests per second
  int max_in_flight = 256;       // open loop: client-side cap on outstanding requests
  double warmup_s = 2;
  double duration_s = 10;        // measured time; ignored when requests > 0
  int64_t requests = 0;          // stop after this many measured requests
  double timeout_s = 60;
  uint64_t seed = 1;             // Poisson arrivals
  bool progress = true;          // a progress line on stderr every second
};

struct LoadReport {
  std::string rpc, model;
  bool open_loop = false;
  int concurrency = 0;
  double offered_rate = 0;
  double seconds = 0;
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // by gRPC code name
  std::map<std::string, std::string> error_messages;  // the first message of each code: its cause
  std::string connect_error;  // set when no connection was made within timeout_s: nothing was sent
  double throughput = 0;                  // successful requests per second
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  // Classify and Segment: the server's own per-request timing (ServerTiming), means in ms.
  double server_decode_ms = 0, server_preprocess_ms = 0, server_queue_ms = 0, server_compute_ms = 0;
  double mean_batch_size = 0, mean_latency_ms = 0;
  // Generate only.
  double tokens_per_second = 0;
  double ttft_p50_ms = 0, ttft_p99_ms = 0, tpot_p50_ms = 0;
};

LoadReport RunLoad(const std::shared_ptr<grpc::Channel>& channel, const LoadOptions& options);

std::string ToJson(const LoadReport& report);
std::string Summary(const LoadReport& report);  // a few human-readable lines

}  // namespace elliptical::loadgen
