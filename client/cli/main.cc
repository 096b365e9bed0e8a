// elliptical-client: a command line for every RPC of the server.
//
//   elliptical-client [--server=HOST:PORT] classify [--model=NAME] [--top_k=5] IMAGE...
//   elliptical-client models
//   elliptical-client health
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "client/cli/commands.h"

ABSL_FLAG(std::string, server, "localhost:8500", "Address of the server.");
ABSL_FLAG(std::string, model, "",
          "Model to call; empty picks the first ready model of the right family.");
ABSL_FLAG(int, top_k, 5, "classify: classes to print per image.");
ABSL_FLAG(bool, stats, false, "classify: also print the attention-scale statistics.");
ABSL_FLAG(double, timeout_s, 30.0, "Deadline of each call, in seconds.");

namespace {

constexpr char kUsage[] =
    "Calls an elliptical-attention model server.\n"
    "\n"
    "  elliptical-client [flags] classify IMAGE...   top-k labels of PNG/JPEG images\n"
    "  elliptical-client [flags] models              models of the server and their state\n"
    "  elliptical-client [flags] health              the server's health status\n"
    "\n"
    "Flags go before or after the command; --helpfull lists them all.";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string command = positional[1];
  std::vector<std::string> args(positional.begin() + 2, positional.end());

  elliptical::client::CallOptions options;
  options.server = absl::GetFlag(FLAGS_server);
  options.timeout_s = absl::GetFlag(FLAGS_timeout_s);
  options.model = absl::GetFlag(FLAGS_model);

  if (command == "classify") {
    return elliptical::client::RunClassify(options, args, absl::GetFlag(FLAGS_top_k),
                                           absl::GetFlag(FLAGS_stats));
  }
  if (command == "models") return elliptical::client::RunModels(options);
  if (command == "health") return elliptical::client::RunHealth(options);
  std::cerr << "unknown command \"" << command << "\"\n\n" << kUsage << "\n";
  return 2;
}
