#include "client/cli/call.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>

namespace elliptical::client {

std::shared_ptr<grpc::Channel> Connect(const CallOptions& options) { return options.channel; }

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
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
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
  if (const std::string hint = SecurityHint(options.channel_options, status); !hint.empty()) {
    std::cerr << "hint: " << hint << "\n";
  }
  return 1;
}

const char* StateName(v1::ModelState state) {
  switch (state) {
    case v1::MODEL_STATE_LOADING: return "loading";
    case v1::MODEL_STATE_READY: return "ready";
    case v1::MODEL_STATE_FAILED: return "failed";
    case v1::MODEL_STATE_UNAVAILABLE: return "unavailable";
    case v1::MODEL_STATE_UNLOADING: return "unloading";
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

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "error: cannot read " << path << "\n";
    return std::nullopt;
  }
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace elliptical::client
