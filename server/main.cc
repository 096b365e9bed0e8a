// elliptical-server: serves the models of a model repository over gRPC.
//
// Start-up order follows what a load balancer needs to see: the gRPC port opens first with
// health NOT_SERVING, models load, then health turns SERVING. SIGTERM or SIGINT drains: health
// turns NOT_SERVING, new calls are refused, accepted calls finish within --grace_period_s.
#include <signal.h>

#include <fstream>
#include <memory>
#include <string>
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
#include "server/api/inference_service.h"
#include "server/log.h"
#include "server/metrics/load_poller.h"
#include "server/metrics/server_metrics.h"
#include "server/repository/model_repository.h"

ABSL_FLAG(std::string, host, "0.0.0.0", "Address to listen on (127.0.0.1 for local only).");
ABSL_FLAG(int, port, 8500, "gRPC port; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound gRPC port is written to this file once the server listens.");
ABSL_FLAG(std::string, model_repository, "models", "Directory of model directories.");
ABSL_FLAG(std::string, device, "",
          "Overrides every model's device: auto, cpu, cuda, cuda:N (empty: as configured).");
ABSL_FLAG(std::string, dtype, "",
          "Overrides every model's dtype: float32, float16, bfloat16 (empty: as configured).");
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
ABSL_FLAG(int, max_images_per_request, 64, "Most images one Classify request may carry.");
ABSL_FLAG(int64_t, max_image_pixels, 64ll << 20, "Largest decoded image, in pixels.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest request message, in bytes.");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Address of the Prometheus /metrics endpoint.");
ABSL_FLAG(int, metrics_port, 8501, "Port of the Prometheus /metrics endpoint; 0 picks a free one; -1 disables it.");
ABSL_FLAG(std::string, metrics_port_file, "",
          "If set, the bound metrics port is written to this file once it listens.");
ABSL_FLAG(double, attention_stats_sample_rate, 0.01,
          "Fraction of vision batches whose attention-scale statistics feed the metrics.");
ABSL_FLAG(double, grace_period_s, 30.0,
          "On SIGTERM, how long accepted calls may run before they are cancelled.");

namespace elliptical::server {
namespace {

constexpr char kServiceName[] = "elliptical.v1.InferenceService";
constexpr char kVersion[] = "0.1.0";

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

  // The metrics endpoint comes up first, so a port conflict fails fast, before models load.
  std::unique_ptr<ServerMetrics> metrics;
  if (absl::GetFlag(FLAGS_metrics_port) >= 0) {
    auto started = ServerMetrics::Start(
        absl::StrCat(absl::GetFlag(FLAGS_metrics_host), ":", absl::GetFlag(FLAGS_metrics_port)),
        kVersion);
    if (!started.ok()) {
      LogError("%s", started.status().message());
      return 1;
    }
    metrics = *std::move(started);
    LogInfo("metrics on %s:%d/metrics", absl::GetFlag(FLAGS_metrics_host), metrics->port());
    if (const std::string file = absl::GetFlag(FLAGS_metrics_port_file); !file.empty()) {
      std::ofstream(file) << metrics->port() << "\n";
    }
  }

  if (absl::GetFlag(FLAGS_tune_malloc)) model::TuneCpuAllocator();
  model::SetComputeThreads(absl::GetFlag(FLAGS_compute_threads));
  LogInfo("%s", model::RuntimeSummary());

  ModelRepository::Options repo_options;
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

  ServiceLimits limits;
  limits.max_images_per_request = absl::GetFlag(FLAGS_max_images_per_request);
  limits.image.max_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  InferenceService service(repository->get(), limits, metrics.get());
  std::unique_ptr<LoadPoller> poller;
  if (metrics) poller = std::make_unique<LoadPoller>(repository->get(), metrics.get(), absl::Seconds(1));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  const std::string address =
      absl::StrCat(absl::GetFlag(FLAGS_host), ":", absl::GetFlag(FLAGS_port));
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &bound_port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  // The service is on gRPC's callback API: calls hold no thread while they wait, so no thread
  // quota bounds concurrency; the models' queues do, and they answer RESOURCE_EXHAUSTED.
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    LogError("cannot listen on %s", address);
    return 1;
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus("", false);
  health->SetServingStatus(kServiceName, false);
  LogInfo("listening on %s:%d (health NOT_SERVING until the models are loaded)",
          absl::GetFlag(FLAGS_host), bound_port);
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file); !port_file.empty()) {
    std::ofstream(port_file) << bound_port << "\n";
  }

  // Loading runs beside the signal wait so that SIGTERM during a long load still stops us.
  std::thread loader([&] {
    (*repository)->LoadAll();
    // Per-model health: a client (or a load balancer) can ask for one model by its name.
    for (const ModelSnapshot& model : (*repository)->List()) {
      health->SetServingStatus(model.name, model.state == ModelState::kReady);
    }
    health->SetServingStatus("", true);
    health->SetServingStatus(kServiceName, true);
    LogInfo("serving");
  });

  const int signal = WaitForTerminationSignal(&signals);
  const double grace = absl::GetFlag(FLAGS_grace_period_s);
  LogInfo("received %s: draining, accepted calls have %.1f s to finish",
          signal == SIGTERM ? "SIGTERM" : "SIGINT", grace);
  loader.join();
  health->Shutdown();  // every service NOT_SERVING, and it stays so
  // gRPC stops accepting calls and waits for those in progress; their work is queued in the
  // models' batchers and schedulers, which keep running until every accepted item is done.
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(grace * 1000)));
  (*repository)->Shutdown();
  poller.reset();
  LogInfo("stopped");
  // Stopping civetweb (the metrics endpoint) takes seconds of polling timeouts; the process is
  // exiting, so leave it to the OS.
  (void)metrics.release();
  return 0;
}

}  // namespace
}  // namespace elliptical::server

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves elliptical-attention models over gRPC.\n"
      "  elliptical-server --model_repository=models --port=8500");
  absl::ParseCommandLine(argc, argv);
  return elliptical::server::Run();
}
