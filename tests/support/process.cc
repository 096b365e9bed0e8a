#include "tests/support/process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"

namespace elliptical::testing {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& out, const std::string& err) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  const int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());  // a bare name is looked up in PATH
  _exit(127);
}

// Waits for the child; -1 if it is still running after timeout_s.
int WaitFor(pid_t pid, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace

CommandResult RunCommand(const std::vector<std::string>& argv, double timeout_s) {
  const ScopedTempDir scoped;
  const std::string& dir = scoped.path();
  const pid_t pid = Spawn(argv, dir + "/out", dir + "/err");
  CommandResult result;
  result.exit_code = WaitFor(pid, timeout_s);
  if (result.exit_code == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  result.out = Slurp(dir + "/out");
  result.err = Slurp(dir + "/err");
  return result;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
  pid_ = Spawn(argv, dir_.path() + "/stdout", dir_.path() + "/stderr");
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  if (WaitFor(pid_, 10) == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool ChildProcess::running() const {
  return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0;
}

std::string ChildProcess::log() const { return Slurp(dir_.path() + "/stderr"); }

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

ServerProcess::ServerProcess(const std::string& binary, const std::vector<std::string>& flags,
                             double timeout_s) {
  std::vector<std::string> argv = {binary, "--host=127.0.0.1", "--port=0",
                                   "--port_file=" + dir_.path() + "/port", "--metrics_host=127.0.0.1",
                                   "--metrics_port=0", "--metrics_port_file=" + dir_.path() + "/metrics_port"};
  // The HTTP port too is a free one unless the test names it: tests run side by side.
  bool names_http = false;
  for (const std::string& f : flags) names_http = names_http || f.rfind("--http_port=", 0) == 0;
  if (!names_http) argv.push_back("--http_port=0");
  argv.insert(argv.end(), flags.begin(), flags.end());
  pid_ = Spawn(argv, dir_.path() + "/stdout", dir_.path() + "/stderr");

  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline && port_ == 0) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;  // exited during start-up; log() tells why
    }
    std::ifstream in(dir_.path() + "/port");
    in >> port_;
    if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port_ == 0) return;
  auto health = grpc::health::v1::Health::NewStub(channel());
  while (std::chrono::steady_clock::now() < deadline) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    grpc::health::v1::HealthCheckResponse response;
    if (health->Check(&context, {}, &response).ok() &&
        response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      serving_ = true;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Terminate(10);
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::shared_ptr<grpc::Channel> ServerProcess::channel() const {
  return grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
}

std::string ServerProcess::log() const { return Slurp(dir_.path() + "/stderr"); }

int ServerProcess::metrics_port() const {
  int port = 0;
  std::ifstream(dir_.path() + "/metrics_port") >> port;
  return port;
}

int ServerProcess::Terminate(double timeout_s) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const int code = WaitFor(pid_, timeout_s);
  if (code != -1) pid_ = -1;
  return code;
}

double MetricValue(int metrics_port, const std::string& series) {
  CommandResult r = RunCommand({"curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"}, 10);
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nan("");
}

bool AwaitMetric(int metrics_port, const std::string& series, double value, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (MetricValue(metrics_port, series) == value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

}  // namespace elliptical::testing
