// inference.GRPCInferenceService, the Open Inference Protocol (KServe v2) over gRPC, so that
// Triton and KServe clients (tritonclient.grpc) can call this server. A thin callback service:
// every RPC is one of inference_protocol.h's verbs; ModelInfer runs as a UnaryCall through
// InferenceCalls (metrics labelled protocol="kserve_grpc"); the repository extension's RPCs go
// to RepositoryCalls (a load or unload answers from its thread once it is over; who may call
// them is checked by the port's auth processor before they run). Triton's other RPCs
// (ModelConfig, ModelStatistics, ...) are not declared and answer UNIMPLEMENTED.
// docs/protocols/kserve.md.
//
// Thread-safety: gRPC calls the handlers from any of its threads. `calls` and `repository` must
// outlive the server.
#pragma once

#include "kserve/grpc_service.grpc.pb.h"
#include "server/core/inference_calls.h"
#include "server/core/repository_calls.h"

namespace elliptical::server {

class KServeService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // Without `repository`, the repository RPCs answer UNIMPLEMENTED.
  explicit KServeService(InferenceCalls* calls, RepositoryCalls* repository = nullptr)
      : calls_(calls), repository_(repository) {}

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
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* context,
                                            const inference::RepositoryIndexRequest* request,
                                            inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* context,
                                                const inference::RepositoryModelLoadRequest* request,
                                                inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* context,
                                                  const inference::RepositoryModelUnloadRequest* request,
                                                  inference::RepositoryModelUnloadResponse* response) override;

 private:
  InferenceCalls* const calls_;
  RepositoryCalls* const repository_;
};

}  // namespace elliptical::server
