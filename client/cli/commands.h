// The subcommands of elliptical-client. Each returns the process exit code: 0 success, 1 the
// server answered with an error, 2 bad usage.
#pragma once

#include <string>
#include <vector>

namespace elliptical::client {

struct CallOptions {
  std::string server;
  std::string model;
  double timeout_s = 30;
};

int RunClassify(const CallOptions& options, const std::vector<std::string>& images, int top_k,
                bool stats);
int RunModels(const CallOptions& options);
int RunHealth(const CallOptions& options);

}  // namespace elliptical::client
