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
#include "grpc/health/v1/health.grpc.pb.h"

namespace elliptical::client {
namespace {

std::shared_ptr<grpc::Channel> Connect(const CallOptions& options) {
  return grpc::CreateChannel(options.server, grpc::InsecureChannelCredentials());
}

void SetDeadline(const CallOptions& options, grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000)));
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    default: return "error";
  }
}

// Prints a failed call so that a person knows what to do next.
int Report(const CallOptions& options, const grpc::Status& status) {
  std::cerr << "error: ";
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      std::cerr << "cannot reach a serving server at " << options.server << " ("
                << status.error_message() << "); is it running, and is --server right?\n";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      std::cerr << "no answer within " << options.timeout_s
                << " s; raise --timeout_s or check the server's load\n";
      break;
    default:
      std::cerr << status.error_message() << " (" << CodeName(status.error_code()) << ")\n";
  }
  return 1;
}

const char* StateName(v1::ModelState state) {
  switch (state) {
    case v1::MODEL_STATE_LOADING: return "loading";
    case v1::MODEL_STATE_READY: return "ready";
    case v1::MODEL_STATE_FAILED: return "failed";
    default: return "unknown";
  }
}

const char* FamilyName(v1::ModelFamily family) {
  switch (family) {
    case v1::MODEL_FAMILY_IMAGE_CLASSIFIER: return "image_classifier";
    case v1::MODEL_FAMILY_SEGMENTER: return "segmenter";
    case v1::MODEL_FAMILY_LANGUAGE_MODEL: return "language_model";
    default: return "unknown";
  }
}

// The first ready model of `family`, or "" with a message printed.
std::string PickModel(const CallOptions& options, v1::InferenceService::Stub* stub,
                      v1::ModelFamily family) {
  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::ListModelsResponse response;
  grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) {
    Report(options, status);
    return "";
  }
  for (const auto& model : response.models()) {
    if (model.family() == family && model.status().state() == v1::MODEL_STATE_READY) {
      return model.name();
    }
  }
  std::cerr << "error: the server has no ready " << FamilyName(family)
            << "; `elliptical-client models` lists what it has\n";
  return "";
}

}  // namespace

int RunClassify(const CallOptions& options, const std::vector<std::string>& paths, int top_k,
                bool stats) {
  if (paths.empty()) {
    std::cerr << "usage: elliptical-client classify [--model=NAME] [--top_k=K] IMAGE...\n";
    return 2;
  }
  v1::ClassifyRequest request;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::cerr << "error: cannot read " << path << "\n";
      return 2;
    }
    request.add_images()->set_encoded(
        std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
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

int RunModels(const CallOptions& options) {
  auto stub = v1::InferenceService::NewStub(Connect(options));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::ListModelsResponse response;
  grpc::Status status = stub->ListModels(&context, v1::ListModelsRequest(), &response);
  if (!status.ok()) return Report(options, status);
  std::cout << absl::StrFormat("%-28s %-18s %s\n", "MODEL", "FAMILY", "STATE");
  for (const auto& model : response.models()) {
    std::cout << absl::StrFormat("%-28s %-18s %s%s\n", model.name(), FamilyName(model.family()),
                                 StateName(model.status().state()),
                                 model.status().reason().empty()
                                     ? ""
                                     : absl::StrCat(": ", model.status().reason()));
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
