// elliptical-client: a command line for every RPC of the server.
//
//   elliptical-client [--server=HOST:PORT] classify [--model=NAME] [--top_k=5] IMAGE...
//   elliptical-client segment [--out=PREFIX] IMAGE
//   elliptical-client generate [--max_new_tokens=64] [--temperature=0.8] "PROMPT"
//   elliptical-client score [--end_of_sequence=false] "TEXT"
//   elliptical-client models
//   elliptical-client health
//   elliptical-client --tls_ca_file=ca.pem --token_file=token.txt models   (TLS and a token)
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "client/cli/commands.h"
#include "client/common/channel_flags.h"

ABSL_FLAG(std::string, server, "localhost:8500", "Address of the server.");
ABSL_FLAG(std::string, model, "",
          "Model to call; empty picks the first ready model of the right family.");
ABSL_FLAG(int, top_k, 5, "classify: classes to print per image.");
ABSL_FLAG(bool, stats, false, "classify: also print the attention-scale statistics.");
ABSL_FLAG(double, timeout_s, 30.0, "Deadline of each call, in seconds.");
ABSL_FLAG(int, max_new_tokens, 64, "generate: most tokens to produce.");
ABSL_FLAG(double, temperature, 0.0, "generate: sampling temperature; 0 is greedy.");
ABSL_FLAG(int, sample_top_k, 0, "generate: sample among the k most likely tokens; 0 = all.");
ABSL_FLAG(double, top_p, 0.0, "generate: nucleus sampling mass; 0 = off.");
ABSL_FLAG(uint64_t, seed, 0, "generate: random seed (same seed, same text); 0 = random.");
ABSL_FLAG(std::vector<std::string>, stop, {}, "generate: comma-separated stop sequences.");
ABSL_FLAG(std::string, out, "", "segment: output path prefix (default: the image path).");
ABSL_FLAG(bool, end_of_sequence, true,
          "score: append and score the end-of-sequence token (the text as a whole document).");

namespace {

constexpr char kUsage[] =
    "Calls an elliptical-attention model server.\n"
    "\n"
    "  elliptical-client [flags] classify IMAGE...   top-k labels of PNG/JPEG images\n"
    "  elliptical-client [flags] segment IMAGE       class map as PNG + overlay\n"
    "  elliptical-client [flags] generate \"PROMPT\"  text streamed as it is generated\n"
    "  elliptical-client [flags] score \"TEXT\"       each token's logprob, and the perplexity\n"
    "  elliptical-client [flags] models              models of the server and their state\n"
    "  elliptical-client [flags] models index        every version of every model, with its state\n"
    "  elliptical-client [flags] models load MODEL   load (or reload) a model; models unload MODEL\n"
    "  elliptical-client [flags] metadata MODEL      a model's shape, attention and labels\n"
    "  elliptical-client [flags] health              the server's health status\n"
    "\n"
    "TLS: --tls_ca_file=CA.pem (mTLS: also --tls_cert_file, --tls_key_file); a token:\n"
    "--token_file=FILE. Flags go before or after the command; --helpfull lists them all.";

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
  options.channel_options = elliptical::client::ChannelOptionsFromFlags(options.server);
  auto channel = elliptical::client::MakeChannel(options.channel_options);
  if (!channel.ok()) {
    std::cerr << "error: " << channel.status().message() << "\n";
    return 2;
  }
  options.channel = *std::move(channel);

  if (command == "classify") {
    return elliptical::client::RunClassify(options, args, absl::GetFlag(FLAGS_top_k),
                                           absl::GetFlag(FLAGS_stats));
  }
  if (command == "segment") {
    if (args.size() != 1) {
      std::cerr << "usage: elliptical-client segment [--model=NAME] [--out=PREFIX] IMAGE\n";
      return 2;
    }
    return elliptical::client::RunSegment(options, args[0], absl::GetFlag(FLAGS_out));
  }
  if (command == "generate") {
    elliptical::client::GenerateOptions g;
    g.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
    g.temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
    g.top_k = absl::GetFlag(FLAGS_sample_top_k);
    g.top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
    g.seed = absl::GetFlag(FLAGS_seed);
    g.stop = absl::GetFlag(FLAGS_stop);
    std::string prompt;
    for (const std::string& a : args) prompt += (prompt.empty() ? "" : " ") + a;
    return elliptical::client::RunGenerate(options, prompt, g);
  }
  if (command == "score") {
    std::string text;
    for (const std::string& a : args) text += (text.empty() ? "" : " ") + a;
    return elliptical::client::RunScore(options, text, absl::GetFlag(FLAGS_end_of_sequence));
  }
  if (command == "models") return elliptical::client::RunModels(options, args);
  if (command == "metadata") {
    return elliptical::client::RunMetadata(options, args.empty() ? options.model : args[0]);
  }
  if (command == "health") return elliptical::client::RunHealth(options);
  std::cerr << "unknown command \"" << command << "\"\n\n" << kUsage << "\n";
  return 2;
}
