#include "server/protocols/kserve/kserve_service.h"

#include "server/transport/grpc/grpc_status.h"
#include "server/protocols/elliptical_v1/inference_service.h"
#include "server/transport/grpc/unary_call.h"
#include "server/protocols/kserve/inference_protocol.h"

namespace elliptical::server {
namespace {

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* KServeService::ServerLive(grpc::CallbackServerContext* context,
                                                    const inference::ServerLiveRequest*,
                                                    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ServerReady(grpc::CallbackServerContext* context,
                                                     const inference::ServerReadyRequest*,
                                                     inference::ServerReadyResponse* response) {
  response->set_ready(kserve::ServerReady(*calls_));
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelReady(grpc::CallbackServerContext* context,
                                                    const inference::ModelReadyRequest* request,
                                                    inference::ModelReadyResponse* response) {
  auto ready = kserve::ModelReady(*calls_, request->name(), request->version());
  if (!ready.ok()) return Answer(context, ready.status());
  response->set_ready(*ready);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(grpc::CallbackServerContext* context,
                                                        const inference::ServerMetadataRequest*,
                                                        inference::ServerMetadataResponse* response) {
  *response = kserve::ServerMetadata(/*http=*/false);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(grpc::CallbackServerContext* context,
                                                       const inference::ModelMetadataRequest* request,
                                                       inference::ModelMetadataResponse* response) {
  auto metadata = kserve::ModelMetadata(*calls_, request->name(), request->version());
  if (!metadata.ok()) return Answer(context, metadata.status());
  *response = *std::move(metadata);
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(grpc::CallbackServerContext* context,
                                                    const inference::ModelInferRequest* request,
                                                    inference::ModelInferResponse* response) {
  return new UnaryCall([&](InferenceCalls::Finish finish) {
    return kserve::StartModelInfer(*calls_, CallContext{Protocol::kKServeGrpc, DeadlineOf(context)}, request,
                                   response, std::move(finish));
  });
}

namespace {

absl::Status NoRepository() {
  return absl::UnimplementedError("this server does not serve the model repository extension");
}

}  // namespace

grpc::ServerUnaryReactor* KServeService::RepositoryIndex(grpc::CallbackServerContext* context,
                                                         const inference::RepositoryIndexRequest* request,
                                                         inference::RepositoryIndexResponse* response) {
  if (!repository_) return Answer(context, NoRepository());
  auto index = kserve::RepositoryIndex(*repository_, *request);
  if (!index.ok()) return Answer(context, index.status());
  *response = *std::move(index);
  return Answer(context, absl::OkStatus());
}

// A change finishes the call from the repository's change thread, once it is over.
grpc::ServerUnaryReactor* KServeService::RepositoryModelLoad(grpc::CallbackServerContext* context,
                                                             const inference::RepositoryModelLoadRequest* request,
                                                             inference::RepositoryModelLoadResponse*) {
  if (!repository_) return Answer(context, NoRepository());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  kserve::StartRepositoryModelLoad(*repository_, *request,
                                   [reactor](const absl::Status& status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::RepositoryModelUnload(grpc::CallbackServerContext* context,
                                                               const inference::RepositoryModelUnloadRequest* request,
                                                               inference::RepositoryModelUnloadResponse*) {
  if (!repository_) return Answer(context, NoRepository());
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  kserve::StartRepositoryModelUnload(*repository_, *request,
                                     [reactor](const absl::Status& status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

}  // namespace elliptical::server
