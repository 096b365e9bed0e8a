// inference.GRPCInferenceService, the Open Inference Protocol (KServe v2) over gRPC, so that
// Triton and KServe clients (tritonclient.grpc) can call this server. A thin callback service:
// every RPC is one of inference_protocol.h's verbs; ModelInfer runs as a UnaryCall through
// InferenceCalls (metrics labelled protocol="kserve_grpc"). Triton's own RPCs (ModelConfig,
// ModelStatistics, ...) are not declared and answer UNIMPLEMENTED. docs/protocols/kserve.md.
//
// Thread-safety: gRPC calls the handlers from any of its threads. `calls` must outlive the
// server.
#pragma once

#include "kserve/grpc_service.grpc.pb.h"
#include "server/core/inference_calls.h"

namespace elliptical::server {

class KServeService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit KServeService(InferenceCalls* calls) : calls_(calls) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  InferenceCalls* const calls_;
};

}  // namespace elliptical::server
