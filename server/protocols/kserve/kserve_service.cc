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

}  // namespace elliptical::server
