// Runs the real binaries in tests: the server as a child process on a free loopback port, and
// one-shot commands (the client CLI) with their output captured.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "tests/support/temp_dir.h"

namespace elliptical::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] with the arguments, waits for it (at most timeout_s), returns its output.
CommandResult RunCommand(const std::vector<std::string>& argv, double timeout_s = 120);

// Any program in the background (a Prometheus server, say); killed by the destructor.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv);
  ~ChildProcess();
  bool running() const;
  std::string log() const;  // its stderr so far

 private:
  pid_t pid_ = -1;
  ScopedTempDir dir_;
};

// The value of one series on a server's /metrics, written as exposed
// ("elliptical_queue_items{model=\"m\"}"); NaN when absent.
double MetricValue(int metrics_port, const std::string& series);
// Polls /metrics until `series` equals `value` (a condition the server reports, not a guess
// at how long something takes); false after `timeout_s`.
bool AwaitMetric(int metrics_port, const std::string& series, double value, double timeout_s = 30);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeLoopbackPort();

// elliptical-server on 127.0.0.1 with --port=0; the destructor stops it (SIGKILL if needed).
class ServerProcess {
 public:
  // Starts the binary with `flags` added; waits until the port is known and health is SERVING
  // (or until timeout_s). ok() tells whether it came up.
  ServerProcess(const std::string& binary, const std::vector<std::string>& flags,
                double timeout_s = 120);
  ~ServerProcess();

  bool ok() const { return port_ > 0 && serving_; }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::shared_ptr<grpc::Channel> channel() const;
  // The Prometheus endpoint's port (the server is started with --metrics_port=0).
  int metrics_port() const;
  // What the server wrote to stderr so far (its log).
  std::string log() const;

  // Sends SIGTERM and waits; returns the exit status (or -1 when it had to be killed).
  int Terminate(double timeout_s = 60);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  bool serving_ = false;
  ScopedTempDir dir_;
};

}  // namespace elliptical::testing
