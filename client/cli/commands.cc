#include "client/cli/commands.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "elliptical/v1/inference_service.grpc.pb.h"
#include "client/cli/call.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace elliptical::client {
int RunClassify(const CallOptions& options, const std::vector<std::string>& paths, int top_k,
                bool stats) {
  if (paths.empty()) {
    std::cerr << "usage: elliptical-client classify [--model=NAME] [--top_k=K] IMAGE...\n";
    return 2;
  }
  v1::ClassifyRequest request;
  for (const std::string& path : paths) {
    std::optional<std::string> bytes = ReadFile(path);
    if (!bytes) return 2;
    request.add_images()->set_encoded(*std::move(bytes));
  }
  auto stub = v1::InferenceService::NewStub(Connect(options));
  std::string model = options.model;
  if (model.empty()) model = PickModel(options, stub.get(), v1::MODEL_FAMILY_IMAGE_CLASSIFIER);
  if (model.empty()) return 1;
  request.set_model_name(model);
  request.set_top_k(top_k);
  request.set_return_attention_stats(stats);

  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::ClassifyResponse response;
  grpc::Status status = stub->Classify(&context, request, &response);
  if (!status.ok()) return Report(options, status);

  for (int i = 0; i < response.classifications_size(); ++i) {
    const v1::Classification& c = response.classifications(i);
    std::cout << paths[i] << "  (model " << response.model_name() << ")\n";
    for (int rank = 0; rank < c.classes_size(); ++rank) {
      std::cout << absl::StrFormat("  %2d  %-24s %8.4f  (class %d)\n", rank + 1,
                                   c.classes(rank).label(), c.classes(rank).probability(),
                                   c.classes(rank).class_id());
    }
    if (stats) {
      for (const auto& layer : c.attention_stats().layers()) {
        std::cout << absl::StrFormat("  layer %2d %-11s token cosine %.4f", layer.layer(),
                                     layer.elliptical() ? "elliptical" : "dot-product",
                                     layer.mean_token_cosine_similarity());
        for (const auto& head : layer.heads()) {
          std::cout << absl::StrFormat("  m mean %.3f min %.3f eff-dim %.3f", head.mean(),
                                       head.min(), head.effective_dimension());
        }
        std::cout << "\n";
      }
    }
  }
  return 0;
}

namespace {

std::string StatusText(const v1::ModelStatus& status) {
  return absl::StrCat(StateName(status.state()), status.reason().empty() ? "" : absl::StrCat(": ", status.reason()));
}

void PrintVersions(const google::protobuf::RepeatedPtrField<v1::ModelVersionStatus>& versions) {
  std::cout << absl::StrFormat("%-28s %-8s %-18s %s\n", "MODEL", "VERSION", "FAMILY", "STATE");
  for (const auto& v : versions) {
    std::string state = StatusText(v.status());
    if (v.status().state() == v1::MODEL_STATE_READY && (v.load_ms() > 0 || v.warmup_ms() > 0)) {
      absl::StrAppend(&state, absl::StrFormat(" (loaded in %.0f ms, warm-up %.0f ms)", v.load_ms(), v.warmup_ms()));
    }
    std::cout << absl::StrFormat("%-28s %-8s %-18s %s\n", v.name(), v.version() > 0 ? absl::StrCat(v.version()) : "-",
                                 FamilyName(v.family()), state);
  }
}

int RunRepositoryIndex(const CallOptions& options) {
  auto stub = v1::InferenceService::NewStub(Connect(options));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::RepositoryIndexResponse response;
  grpc::Status status = stub->RepositoryIndex(&context, v1::RepositoryIndexRequest(), &response);
  if (!status.ok()) return Report(options, status);
  PrintVersions(response.models());
  return 0;
}

int RunLoad(const CallOptions& options, const std::string& name) {
  auto stub = v1::InferenceService::NewStub(Connect(options));
  grpc::ClientContext context;
  SetDeadline(options, &context);  // a load reads weights and warms up: --timeout_s may need raising
  v1::LoadModelRequest request;
  request.set_model_name(name);
  v1::LoadModelResponse response;
  grpc::Status status = stub->LoadModel(&context, request, &response);
  if (!status.ok()) return Report(options, status);
  PrintVersions(response.versions());
  return 0;
}

int RunUnload(const CallOptions& options, const std::string& name) {
  auto stub = v1::InferenceService::NewStub(Connect(options));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::UnloadModelRequest request;
  request.set_model_name(name);
  v1::UnloadModelResponse response;
  grpc::Status status = stub->UnloadModel(&context, request, &response);
  if (!status.ok()) return Report(options, status);
  std::cout << "unloaded " << name << "\n";
  return 0;
}

}  // namespace

int RunModels(const CallOptions& options, const std::vector<std::string>& args) {
  if (!args.empty()) {
    if (args[0] == "index" && args.size() == 1) return RunRepositoryIndex(options);
    if (args[0] == "load" && args.size() == 2) return RunLoad(options, args[1]);
    if (args[0] == "unload" && args.size() == 2) return RunUnload(options, args[1]);
    std::cerr << "usage: elliptical-client models [index | load MODEL | unload MODEL]\n";
    return 2;
  }
  auto stub = v1::InferenceService::NewStub(Connect(options));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::ListModelsResponse response;
  grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return Report(options, status);
  std::cout << absl::StrFormat("%-28s %-18s %s\n", "MODEL", "FAMILY", "STATE");
  for (const auto& model : response.models()) {
    std::cout << absl::StrFormat("%-28s %-18s %s\n", model.name(), FamilyName(model.family()),
                                 StatusText(model.status()));
  }
  return 0;
}

int RunMetadata(const CallOptions& options, const std::string& name) {
  if (name.empty()) {
    std::cerr << "usage: elliptical-client metadata MODEL\n";
    return 2;
  }
  auto stub = v1::InferenceService::NewStub(Connect(options));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::GetModelMetadataRequest request;
  request.set_model_name(name);
  v1::GetModelMetadataResponse m;
  grpc::Status status = stub->GetModelMetadata(&context, request, &m);
  if (!status.ok()) return Report(options, status);
  std::string layers;
  for (uint32_t l : m.attention().elliptical_layers()) absl::StrAppend(&layers, layers.empty() ? "" : ",", l);
  std::cout << absl::StrFormat("%s: %s, %s%s\n", m.name(), FamilyName(m.family()), StateName(m.status().state()),
                               m.status().reason().empty() ? "" : absl::StrCat(" (", m.status().reason(), ")"));
  std::cout << absl::StrFormat("  device %s, %s; %d layers, %d heads, width %d, %d parameters\n", m.device(),
                               m.dtype(), m.num_layers(), m.num_heads(), m.embed_dim(), m.num_parameters());
  if (!m.dtype_reason().empty()) std::cout << "  precision: " << m.dtype_reason() << "\n";
  std::cout << absl::StrFormat("  attention %s, elliptical layers [%s], score scale %g, estimator %s\n",
                               m.attention().mode() == v1::ATTENTION_MODE_DOT_PRODUCT ? "dot-product" : "elliptical",
                               layers, m.attention().score_scale(), m.attention().metric_estimator());
  if (m.image_size_px() > 0) std::cout << "  image size " << m.image_size_px() << " px\n";
  if (m.labels_size() > 0) {
    std::cout << "  " << m.labels_size() << " labels: ";
    for (int i = 0; i < std::min(m.labels_size(), 10); ++i) std::cout << (i ? ", " : "") << m.labels(i);
    std::cout << (m.labels_size() > 10 ? ", ...\n" : "\n");
  }
  return 0;
}

int RunHealth(const CallOptions& options) {
  auto stub = grpc::health::v1::Health::NewStub(Connect(options));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return Report(options, status);
  const bool serving = response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  std::cout << (serving ? "SERVING" : "NOT_SERVING") << "\n";
  return serving ? 0 : 1;
}

}  // namespace elliptical::client
