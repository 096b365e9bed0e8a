// The Open Inference Protocol's verbs, whatever carries them: the gRPC service
// (kserve_service.h) and the HTTP routes (server/protocols/kserve/kserve_routes.h) are thin wrappers of
// these. Readiness and metadata come from the model repository; ModelInfer maps the v2 request
// to elliptical.v1 (request_mapping.h, response_mapping.h) and serves it through InferenceCalls, the one serving path.
//
// Thread-safety: every function may be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kserve/grpc_service.pb.h"
#include "server/core/inference_calls.h"
#include "server/core/repository_calls.h"

namespace elliptical::server::kserve {

// Ready once every model has been tried (loaded or failed), until the server drains.
bool ServerReady(InferenceCalls& calls);
// Whether the model is loaded and serving; false for a model the repository does not have.
// NOT_FOUND for a version other than "" or "1" of a known model.
absl::StatusOr<bool> ModelReady(InferenceCalls& calls, const std::string& name, const std::string& version);

// The server's name and version, and the extensions of the binding: "classification", and on
// HTTP "binary_tensor_data".
inference::ServerMetadataResponse ServerMetadata(bool http);
// NOT_FOUND for an unknown model or version.
absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata(InferenceCalls& calls, const std::string& name,
                                                               const std::string& version);

// Serves one ModelInfer: `finish` runs exactly once (possibly before this returns) with the
// status, `response` filled when it is OK; `request` and `response` must stay valid until then.
// The request parameter "timeout" (microseconds) shortens `context.deadline`. Language models
// are refused with FAILED_PRECONDITION. Returns the call's handle for cancellation (null when
// it finished at once).
std::shared_ptr<CallHandle> StartModelInfer(InferenceCalls& calls, CallContext context,
                                            const inference::ModelInferRequest* request,
                                            inference::ModelInferResponse* response, InferenceCalls::Finish finish);

// The model repository extension, over RepositoryCalls (who may change the repository is
// decided before these run: --repository_access). NOT_FOUND for a repository_name other than "";
// INVALID_ARGUMENT for a parameter (CheckRepositoryParameters, request_mapping.h).
absl::StatusOr<inference::RepositoryIndexResponse> RepositoryIndex(const RepositoryCalls& repository,
                                                                  const inference::RepositoryIndexRequest& request);
// `finish` runs exactly once, possibly before these return: once the model is loaded (or the
// load failed), or once it is unloaded.
void StartRepositoryModelLoad(RepositoryCalls& repository, const inference::RepositoryModelLoadRequest& request,
                              InferenceCalls::Finish finish);
void StartRepositoryModelUnload(RepositoryCalls& repository, const inference::RepositoryModelUnloadRequest& request,
                                InferenceCalls::Finish finish);

}  // namespace elliptical::server::kserve
