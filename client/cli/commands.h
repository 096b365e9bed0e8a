// The subcommands of elliptical-client. Each returns the process exit code: 0 success, 1 the
// server answered with an error, 2 bad usage.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "client/common/channel.h"

namespace elliptical::client {

struct CallOptions {
  std::string server;
  ChannelOptions channel_options;          // how to reach `server` (TLS, token)
  std::shared_ptr<grpc::Channel> channel;  // made from channel_options once, in main
  std::string model;
  double timeout_s = 30;
};

int RunClassify(const CallOptions& options, const std::vector<std::string>& images, int top_k,
                bool stats);
struct GenerateOptions {
  int max_new_tokens = 64;
  float temperature = 0;
  int top_k = 0;
  float top_p = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

// Streams the text to stdout as tokens arrive; Ctrl-C cancels the call.
int RunGenerate(const CallOptions& options, const std::string& prompt, const GenerateOptions& generate);

// Prints each token of TEXT with its log-probability, then the perplexity. `end_of_sequence`:
// the end-of-sequence token is appended and scored (the text as a whole document).
int RunScore(const CallOptions& options, const std::string& text, bool end_of_sequence);

// Writes IMAGE's class map as a colourised PNG and an overlay on the image, beside `out_prefix`
// (default: the image path without extension), and prints the classes found.
int RunSegment(const CallOptions& options, const std::string& image, const std::string& out_prefix);

// `models`: each model's state; `models index`: every version of every model; `models load
// NAME` / `models unload NAME`: the repository API (the server's --model_control_mode=explicit).
int RunModels(const CallOptions& options, const std::vector<std::string>& args);
int RunMetadata(const CallOptions& options, const std::string& model);
int RunHealth(const CallOptions& options);

}  // namespace elliptical::client
