// elliptical-server: serves the models of a model repository over gRPC.
//
// Start-up order follows what a load balancer needs to see: the gRPC port opens first with
// health NOT_SERVING, models load, then health turns SERVING. SIGTERM or SIGINT drains: health
// turns NOT_SERVING, new calls are refused, accepted calls finish within --grace_period_s.
#include <signal.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>
#include <thread>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/api/runtime.h"
#include "server/protocols/elliptical_v1/inference_service.h"
#include "server/http_front.h"
#include "server/protocols/kserve/kserve_service.h"
#include "server/log.h"
#include "server/metrics/load_poller.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/model_repository.h"
#include "server/security/server_security.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (127.0.0.1 for local only).");
ABSL_FLAG(int, port, 8500, "gRPC port; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written to this file once the server listens.");
ABSL_FLAG(std::string, model_repository, "models", "Directory of model directories.");
// Model lifecycle (server/repository/model_repository.h, docs/model_formats.md#lifecycle).
ABSL_FLAG(std::string, model_control_mode, "none",
          "none: load every model at start, change nothing while serving; explicit: load what "
          "--load_model names, then only through the repository API; poll: load every model, then "
          "apply what changes in the repository every --repository_poll_s.");
ABSL_FLAG(std::vector<std::string>, load_model, {},
          "With --model_control_mode=explicit: the models to load at start (comma-separated; * for all).");
ABSL_FLAG(double, repository_poll_s, 15, "With --model_control_mode=poll: seconds between reads of the repository.");
ABSL_FLAG(int64_t, model_memory_budget_mb, 0,
          "Most MiB that loaded model versions (and those finishing their requests after a reload) may "
          "hold, estimated from their files and KV caches; a load beyond it is refused. 0: no limit.");
ABSL_FLAG(bool, warmup, true,
          "Warm every model version up (each instance, each batch-size bucket) before it turns ready.");
ABSL_FLAG(bool, strict_readiness, false,
          "Health and KServe's server-ready are SERVING only while every model meant to be loaded has "
          "a ready version (default: while at least one has).");
ABSL_FLAG(std::string, device, "",
          "Overrides every model's device: auto, cpu, cuda, cuda:N (empty: as configured).");
ABSL_FLAG(std::string, dtype, "",
          "Overrides every model's dtype: auto (bfloat16 on CUDA, and for image models on CPUs "
          "with AMX-BF16; else float32), float32, float16 (CUDA), bfloat16 (empty: as configured).");
ABSL_FLAG(bool, tune_malloc, true,
          "Keep freed tensor memory in the process (faster CPU forwards, resident size stays at "
          "its peak); see model/api/runtime.h.");
ABSL_FLAG(int, compute_threads, 0,
          "CPU threads a model's forwards use in all (its instances share them; a language model's "
          "scheduler uses them all); 0 = one per core.");
ABSL_FLAG(int, instances, 0,
          "Overrides every vision model's instances.count (executors fed by its one batcher); 0 "
          "keeps each model's (default: 2 with two or more cores).");
ABSL_FLAG(int, max_batch_size, 0,
          "Overrides every vision model's batching.max_batch_size (1 turns batching off); 0 keeps "
          "each model's.");
ABSL_FLAG(int, max_queue_delay_us, -1,
          "Overrides every vision model's batching.max_queue_delay_ms, in microseconds; -1 keeps "
          "each model's.");
ABSL_FLAG(int, max_running_sequences, 0,
          "Overrides every language model's generation.max_running (1 = one sequence at a time); "
          "0 keeps each model's.");
// Request limits (server/core/request_limits.h): a request beyond one is refused at the edge.
ABSL_FLAG(int, max_images_per_request, 64, "Most images one Classify or Segment request may carry.");
ABSL_FLAG(int64_t, max_image_pixels, 16ll << 20, "Largest decoded image, in pixels.");
ABSL_FLAG(int64_t, max_request_pixels, 32ll << 20,
          "Most decoded pixels of all images of one request (RESOURCE_EXHAUSTED beyond).");
ABSL_FLAG(int64_t, max_inflight_pixels, 64ll << 20,
          "Most decoded pixels held by all vision requests in progress together, about 15 bytes "
          "each on the CPU (RESOURCE_EXHAUSTED beyond).");
ABSL_FLAG(uint32_t, max_top_k, 1u << 20,
          "Largest top_k accepted (smaller values beyond the classes or vocabulary are capped).");
ABSL_FLAG(int64_t, max_prompt_bytes, 256 << 10, "Longest Generate prompt, in bytes.");
ABSL_FLAG(int, max_stop_sequences, 16, "Most stop sequences of one Generate request.");
ABSL_FLAG(int, max_stop_sequence_bytes, 256, "Longest stop sequence, in bytes.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest request message, in bytes.");
// The HTTP front (server/http_front.h): KServe v2 REST and OpenAI completions.
ABSL_FLAG(std::string, http_host, "", "Address of the HTTP port (empty: --host's).");
ABSL_FLAG(int, http_port, 8502,
          "HTTP port (KServe v2 REST, OpenAI /v1/completions); 0 picks a free one; -1 disables it.");
ABSL_FLAG(std::string, http_port_file, "",
          "If set, the bound HTTP port is written to this file once it listens.");
ABSL_FLAG(int, http_threads, 4,
          "HTTP event-loop threads (1 to 256), shared by every connection: an idle, slow or "
          "streaming client holds none of them.");
ABSL_FLAG(int, http_max_connections, 4096,
          "Most open HTTP connections; beyond, a new one is refused at once (503) and counted.");
ABSL_FLAG(double, http_header_timeout_s, 10,
          "Seconds a request head (request line and headers) may take from its first byte, in "
          "all: a client that trickles it is cut (408).");
ABSL_FLAG(double, http_idle_timeout_s, 30,
          "Seconds an HTTP keep-alive connection may wait for its next request.");
ABSL_FLAG(int64_t, http_max_body_bytes_in_flight, int64_t{1} << 30,
          "Request bodies all HTTP connections may hold at once (never less than the body limit); "
          "beyond, a new body gets 503.");
ABSL_FLAG(double, http_body_timeout_s, 60, "Seconds a request body may take after its head (408 beyond).");
ABSL_FLAG(int64_t, max_http_body_bytes, -1,
          "Largest HTTP request body, in bytes (413 beyond); -1: --max_message_bytes.");
ABSL_FLAG(bool, http_metrics, true,
          "Also answer GET /metrics on the HTTP port (routers scrape the inference port), under "
          "--metrics_auth_file's basic auth when set; bearer tokens do not apply to it.");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Address of the Prometheus /metrics endpoint.");
ABSL_FLAG(int, metrics_port, 8501, "Port of the Prometheus /metrics endpoint; 0 picks a free one; -1 disables it.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the bound metrics port is written to this file once it listens.");
ABSL_FLAG(double, attention_stats_sample_rate, 0.01,
          "Fraction of vision batches whose attention-scale statistics feed the metrics.");
ABSL_FLAG(double, grace_period_s, 30.0,
          "On SIGTERM, how long accepted calls may run before they are cancelled.");
// Security (server/security/, docs/deploying.md#security).
ABSL_FLAG(std::string, tls_cert_file, "", "TLS: the server's PEM certificate chain; empty: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "", "TLS: the PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "mTLS: PEM CA certificates that client certificates must chain to.");
ABSL_FLAG(std::string, tls_client_auth, "",
          "Client certificates: none, request (verified when sent) or require; empty: require "
          "with --tls_client_ca_file, none without.");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "Bearer tokens, one per line ('#' comments); when set, every call needs "
          "'authorization: Bearer <token>'.");
ABSL_FLAG(std::string, auth_exempt, "health",
          "Services answered without a token: comma-separated health, reflection, or none.");
ABSL_FLAG(std::string, metrics_auth_file, "",
          "user:password lines; when set, /metrics needs HTTP basic auth (401 without).");
// Who may load and unload models (server/security/repository_access.h).
ABSL_FLAG(std::string, repository_tokens_file, "",
          "Bearer tokens allowed to load and unload models, one per line; also accepted for every "
          "other call.");
ABSL_FLAG(std::string, repository_access, "auto",
          "Who may load and unload models: repository_tokens (--repository_tokens_file), "
          "inference_tokens (any accepted token), none, or auto: repository_tokens when that file "
          "is set, else none when --auth_tokens_file is set, else everyone.");

namespace elliptical::server {
namespace {

constexpr char kServiceName[] = "elliptical.v1.InferenceService";
constexpr char kVersion[] = "0.1.0";

// gRPC health as the repository's states say (ModelRepository::Options::on_change): the server
// ("" and the service) SERVING while ModelRepository::ServerReady(), and each model by its name
// while it has a ready version. Changes before the server exists wait for Attach.
class HealthFollower {
 public:
  void Attach(grpc::HealthCheckServiceInterface* health, const ModelRepository* repository) {
    {
      absl::MutexLock lock(&mu_);
      health_ = health;
      repository_ = repository;
    }
    Update();
  }
  void Update() {
    absl::MutexLock lock(&mu_);  // one update at a time, so an older one never lands last
    if (!health_ || shut_down_) return;
    for (const ModelSnapshot& model : repository_->List()) {
      health_->SetServingStatus(model.name, repository_->ModelReady(model.name));
    }
    const bool ready = repository_->ServerReady();
    health_->SetServingStatus("", ready);
    health_->SetServingStatus(kServiceName, ready);
  }
  // Every service NOT_SERVING from now on.
  void Shutdown() {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    if (health_) health_->Shutdown();
  }

 private:
  absl::Mutex mu_;
  grpc::HealthCheckServiceInterface* health_ ABSL_GUARDED_BY(mu_) = nullptr;
  const ModelRepository* repository_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

int WaitForTerminationSignal(sigset_t* signals) {
  int signal = 0;
  sigwait(signals, &signal);
  return signal;
}

int Run() {
  // Block the termination signals before any thread exists, so every thread inherits the mask
  // and the main thread alone receives them through sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Security flags and files are checked first: a typo fails start-up at once, naming them.
  security::SecurityOptions security_options;
  security_options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  security_options.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  security_options.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  security_options.tls_client_auth = absl::GetFlag(FLAGS_tls_client_auth);
  security_options.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  security_options.auth_exempt = absl::GetFlag(FLAGS_auth_exempt);
  security_options.metrics_auth_file = absl::GetFlag(FLAGS_metrics_auth_file);
  security_options.repository_tokens_file = absl::GetFlag(FLAGS_repository_tokens_file);
  security_options.repository_access = absl::GetFlag(FLAGS_repository_access);
  absl::StatusOr<security::ServerSecurity> server_security =
      security::BuildServerSecurity(security_options);
  if (!server_security.ok()) {
    LogError("%s", server_security.status().message());
    return 1;
  }
  LogInfo("security: %s", server_security->summary);
  if (std::string w = security::ExposureWarning(absl::GetFlag(FLAGS_host), *server_security); !w.empty()) {
    LogWarning("%s", w);
  }

  // The metrics endpoint comes up first, so a port conflict fails fast, before models load.
  std::unique_ptr<ServerMetrics> metrics;
  if (absl::GetFlag(FLAGS_metrics_port) >= 0) {
    auto started = ServerMetrics::Start(
        absl::StrCat(absl::GetFlag(FLAGS_metrics_host), ":", absl::GetFlag(FLAGS_metrics_port)),
        kVersion, server_security->metrics_auth);
    if (!started.ok()) {
      LogError("%s", started.status().message());
      return 1;
    }
    metrics = *std::move(started);
    LogInfo("metrics on %s:%d/metrics", absl::GetFlag(FLAGS_metrics_host), metrics->port());
    if (const std::string file = absl::GetFlag(FLAGS_metrics_port_file); !file.empty()) {
      std::ofstream(file) << metrics->port() << "\n";
    }
  } else if (absl::GetFlag(FLAGS_http_metrics) && absl::GetFlag(FLAGS_http_port) >= 0) {
    // No metrics port, but the HTTP port answers /metrics: the registry without its own port.
    metrics = ServerMetrics::Unexposed(kVersion);
  }

  if (absl::GetFlag(FLAGS_tune_malloc)) model::TuneCpuAllocator();
  model::SetComputeThreads(absl::GetFlag(FLAGS_compute_threads));
  LogInfo("%s", model::RuntimeSummary());

  auto control_mode = ParseControlMode(absl::GetFlag(FLAGS_model_control_mode));
  if (!control_mode.ok()) {
    LogError("%s", control_mode.status().message());
    return 1;
  }
  if (!absl::GetFlag(FLAGS_load_model).empty() && *control_mode != ControlMode::kExplicit) {
    LogError("--load_model applies to --model_control_mode=explicit (it is %s)", absl::GetFlag(FLAGS_model_control_mode));
    return 1;
  }
  if (absl::GetFlag(FLAGS_repository_poll_s) < 0.1 || absl::GetFlag(FLAGS_model_memory_budget_mb) < 0) {
    LogError("--repository_poll_s must be at least 0.1 and --model_memory_budget_mb at least 0");
    return 1;
  }
  // Health follows every change of the models' states (HealthFollower below); the gRPC server
  // it reports through comes up after the repository is made.
  auto health = std::make_shared<HealthFollower>();

  ModelRepository::Options repo_options;
  repo_options.control_mode = *control_mode;
  repo_options.startup_models = absl::GetFlag(FLAGS_load_model);
  repo_options.poll_interval = absl::Seconds(absl::GetFlag(FLAGS_repository_poll_s));
  repo_options.memory_budget_bytes = absl::GetFlag(FLAGS_model_memory_budget_mb) << 20;
  repo_options.warmup = absl::GetFlag(FLAGS_warmup);
  repo_options.strict_readiness = absl::GetFlag(FLAGS_strict_readiness);
  repo_options.on_change = [health] { health->Update(); };
  repo_options.metrics = metrics.get();
  repo_options.attention_stats_sample_rate = absl::GetFlag(FLAGS_attention_stats_sample_rate);
  repo_options.root = absl::GetFlag(FLAGS_model_repository);
  repo_options.load.device = absl::GetFlag(FLAGS_device);
  repo_options.load.dtype = absl::GetFlag(FLAGS_dtype);
  repo_options.serving.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  repo_options.serving.max_queue_delay_us = absl::GetFlag(FLAGS_max_queue_delay_us);
  repo_options.serving.max_running_sequences = absl::GetFlag(FLAGS_max_running_sequences);
  repo_options.serving.instances = absl::GetFlag(FLAGS_instances);
  repo_options.serving.cpu_threads = absl::GetFlag(FLAGS_compute_threads);
  auto repository = ModelRepository::Create(repo_options);
  if (!repository.ok()) {
    LogError("%s", repository.status().message());
    return 1;
  }
  LogInfo("model control: %s", absl::GetFlag(FLAGS_model_control_mode));

  RequestLimits limits;
  limits.max_images_per_request = absl::GetFlag(FLAGS_max_images_per_request);
  limits.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  limits.max_request_pixels = absl::GetFlag(FLAGS_max_request_pixels);
  limits.max_inflight_pixels = absl::GetFlag(FLAGS_max_inflight_pixels);
  limits.max_top_k = absl::GetFlag(FLAGS_max_top_k);
  limits.max_prompt_bytes = absl::GetFlag(FLAGS_max_prompt_bytes);
  limits.max_stop_sequences = absl::GetFlag(FLAGS_max_stop_sequences);
  limits.max_stop_sequence_bytes = absl::GetFlag(FLAGS_max_stop_sequence_bytes);
  InferenceCalls calls(repository->get(), limits, metrics.get());
  // The repository API's loads and unloads (server/core/repository_calls.h), for every front.
  RepositoryCalls repository_calls(repository->get(), calls.calls());
  InferenceService service(&calls, &repository_calls);
  std::unique_ptr<LoadPoller> poller;
  if (metrics) {
    // nv_gpu_* in Triton's names, through NVML opened at run time (gpu_metrics.h).
    auto gpu = std::make_unique<GpuMetrics>(*metrics->registry(), Nvml::Load());
    LogInfo("%s", gpu->summary());
    poller = std::make_unique<LoadPoller>(repository->get(), metrics.get(), absl::Seconds(1), std::move(gpu));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  const std::string address =
      absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port));
  builder.AddListeningPort(address, server_security->credentials, &bound_port);
  builder.RegisterService(&service);
  KServeService kserve_service(&calls, &repository_calls);  // the Open Inference Protocol (server/protocols/kserve)
  builder.RegisterService(&kserve_service);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  // The service is on gRPC's callback API: calls hold no thread while they wait, so no thread
  // quota bounds concurrency; the models' queues do, and they answer RESOURCE_EXHAUSTED.
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    LogError("cannot listen on %s", address);
    return 1;
  }
  // The HTTP port opens beside the gRPC one, before the models load: its health routes answer
  // "not ready" until they are.
  std::unique_ptr<HttpFront> http;
  if (absl::GetFlag(FLAGS_http_port) >= 0) {
    HttpFrontOptions http_options;
    http_options.transport.host = absl::GetFlag(FLAGS_http_host).empty() ? absl::GetFlag(FLAGS_host)
                                                               : absl::GetFlag(FLAGS_http_host);
    http_options.transport.port = absl::GetFlag(FLAGS_http_port);
    http_options.transport.threads = absl::GetFlag(FLAGS_http_threads);
    http_options.transport.max_connections = absl::GetFlag(FLAGS_http_max_connections);
    http_options.transport.header_timeout = absl::Seconds(absl::GetFlag(FLAGS_http_header_timeout_s));
    http_options.transport.idle_timeout = absl::Seconds(absl::GetFlag(FLAGS_http_idle_timeout_s));
    http_options.transport.body_timeout = absl::Seconds(absl::GetFlag(FLAGS_http_body_timeout_s));
    http_options.metrics = metrics.get();
    http_options.serve_metrics = absl::GetFlag(FLAGS_http_metrics);
    http_options.metrics_auth = server_security->metrics_auth;
    if (http_options.serve_metrics && http_options.authenticator && !http_options.metrics_auth) {
      LogWarning("HTTP: /metrics answers without credentials while the other routes need a bearer token; "
                 "set --metrics_auth_file, or --http_metrics=false to keep metrics off this port");
    }
    const int64_t body = absl::GetFlag(FLAGS_max_http_body_bytes);
    http_options.transport.max_body_bytes =
        static_cast<size_t>(body >= 0 ? body : absl::GetFlag(FLAGS_max_message_bytes));
    http_options.transport.max_body_bytes_in_flight =
        static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_http_max_body_bytes_in_flight)));
    http_options.transport.tls_cert_file = security_options.tls_cert_file;
    http_options.transport.tls_key_file = security_options.tls_key_file;
    http_options.transport.tls_client_ca_file = security_options.tls_client_ca_file;
    http_options.transport.tls_client_auth = security_options.tls_client_auth;
    http_options.authenticator = server_security->authenticator;
    http_options.repository = &repository_calls;
    http_options.repository_access = server_security->repository_access;
    http_options.health_exempt = server_security->health_exempt;
    if (http_options.transport.host != absl::GetFlag(FLAGS_host)) {
      if (std::string w = security::ExposureWarning(http_options.transport.host, *server_security); !w.empty()) {
        LogWarning("HTTP: %s", w);
      }
    }
    auto started = HttpFront::Start(http_options, calls);
    if (!started.ok()) {
      LogError("%s", started.status().message());
      server->Shutdown(std::chrono::system_clock::now());
      return 1;
    }
    http = *std::move(started);
    LogInfo("HTTP (KServe v2, OpenAI) on %s:%d%s", http_options.transport.host, http->port(),
            server_security->tls ? " (TLS)" : "");
    if (const std::string file = absl::GetFlag(FLAGS_http_port_file); !file.empty()) {
      std::ofstream(file) << http->port() << "\n";
    }
  }

  health->Attach(server->GetHealthCheckService(), repository->get());
  LogInfo("listening on %s:%d (health NOT_SERVING until a model is ready%s)", absl::GetFlag(FLAGS_host), bound_port,
          absl::GetFlag(FLAGS_strict_readiness) ? ": every one, --strict_readiness" : "");
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    std::ofstream(port_file) << bound_port << "\n";
  }

  // Loading runs beside the signal wait so that SIGTERM during a long load still stops us.
  std::thread loader([&] {
    (*repository)->LoadAll();
    LogInfo("%s", (*repository)->ServerReady() ? "serving" : "no model is ready: health stays NOT_SERVING");
  });

  const int signal = WaitForTerminationSignal(&signals);
  const double grace = absl::GetFlag(FLAGS_grace_period_s);
  LogInfo("received %s: draining, accepted calls have %.1f s to finish",
          signal == SIGTERM ? "SIGTERM" : "SIGINT", grace);
  loader.join();
  health->Shutdown();  // every service NOT_SERVING, and it stays so
  // New inference calls are refused (UNAVAILABLE); accepted ones finish, their work queued in
  // the models' batchers and schedulers. Then gRPC closes every connection at once: waiting
  // for idle clients to acknowledge a graceful goodbye could take 20 s each (call_tracker.h).
  calls.calls()->BeginDrain();
  // Idle and slow HTTP connections close now; those with a request in progress after it.
  if (http) http->Drain();
  const absl::Time drain_start = absl::Now();
  const absl::Time drained_by = drain_start + absl::Seconds(grace);
  if (!calls.calls()->WaitUntilIdle(drained_by)) {
    LogWarning("%d calls still running after %.1f s: cancelling them", calls.calls()->active(), grace);
  } else {
    LogInfo("accepted calls finished in %.2f s", absl::ToDoubleSeconds(absl::Now() - drain_start));
  }
  repository_calls.Stop();  // a load in progress finishes, queued ones are refused, before the ports close
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  // The HTTP port closes after the drain, like gRPC's: until then its new calls got 503.
  if (http) http->Stop();
  (*repository)->Shutdown();
  poller.reset();
  LogInfo("stopped %.2f s after the signal", absl::ToDoubleSeconds(absl::Now() - drain_start));
  // Stopping civetweb (the metrics endpoint) takes seconds of polling timeouts; the process is
  // exiting, so leave it to the OS. Kept by a static: leak checkers (the ASan build's) see it as
  // reachable, not lost.
  static ServerMetrics* const kept_until_exit = metrics.release();
  (void)kept_until_exit;
  return 0;
}

}  // namespace
}  // namespace elliptical::server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves elliptical-attention models over gRPC.\n"
      "  elliptical-server --model_repository=models --port=8500");
  absl::ParseCommandLine(argc, argv);
  elliptical::server::RouteProtobufLog();
  return elliptical::server::Run();
}
