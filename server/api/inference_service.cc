#include "server/api/inference_service.h"

#include "server/api/generate_reactor.h"
#include "server/api/grpc_status.h"
#include "server/api/unary_call.h"
#include "server/calls/proto_convert.h"

namespace elliptical::server {
namespace {

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

CallContext Context(const grpc::CallbackServerContext* context) {
  return CallContext{Protocol::kElliptical, DeadlineOf(context)};
}

}  // namespace

absl::Time DeadlineOf(const grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  // No deadline arrives as the largest time_point: keep it infinite rather than overflow.
  if (deadline < std::chrono::system_clock::now() + std::chrono::hours(24 * 365)) {
    return absl::FromChrono(deadline);
  }
  return absl::InfiniteFuture();
}

grpc::ServerUnaryReactor* InferenceService::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest*,
                                                       v1::ListModelsResponse* response) {
  for (const ModelSnapshot& snapshot : calls_->repository().List()) {
    v1::ModelSummary* summary = response->add_models();
    summary->set_name(snapshot.name);
    summary->set_family(FamilyToProto(snapshot.family));
    FillModelStatus(snapshot, summary->mutable_status());
  }
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::GetModelMetadata(grpc::CallbackServerContext* context,
                                                             const v1::GetModelMetadataRequest* request,
                                                             v1::GetModelMetadataResponse* response) {
  auto snapshot = calls_->Describe(request->model_name());
  if (!snapshot.ok()) return Answer(context, ToGrpcStatus(snapshot.status()));
  FillMetadata(*snapshot, response);
  return Answer(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::Classify(grpc::CallbackServerContext* context,
                                                     const v1::ClassifyRequest* request,
                                                     v1::ClassifyResponse* response) {
  return new UnaryCall([&](InferenceCalls::Finish finish) {
    return calls_->Classify(Context(context), request, response, std::move(finish));
  });
}

grpc::ServerUnaryReactor* InferenceService::Segment(grpc::CallbackServerContext* context,
                                                    const v1::SegmentRequest* request,
                                                    v1::SegmentResponse* response) {
  return new UnaryCall([&](InferenceCalls::Finish finish) {
    return calls_->Segment(Context(context), request, response, std::move(finish));
  });
}

grpc::ServerUnaryReactor* InferenceService::Score(grpc::CallbackServerContext* context,
                                                  const v1::ScoreRequest* request, v1::ScoreResponse* response) {
  return new UnaryCall([&](InferenceCalls::Finish finish) {
    return calls_->Score(Context(context), request, response, std::move(finish));
  });
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  auto* reactor = new GenerateReactor();
  auto call = calls_->Generate(Context(context), *request);
  if (!call.ok()) {
    reactor->Reject(ToGrpcStatus(call.status()));
  } else {
    reactor->Start(*std::move(call));
  }
  return reactor;
}

}  // namespace elliptical::server
