#include "server/protocols/kserve/inference_protocol.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/input/image_decoder.h"
#include "server/protocols/kserve/request_mapping.h"
#include "server/protocols/kserve/response_mapping.h"

#ifndef ELLIPTICAL_SERVER_VERSION
#error "ELLIPTICAL_SERVER_VERSION (the project's version) is set by server/CMakeLists.txt"
#endif

namespace elliptical::server::kserve {
namespace {

// The request metrics' rpc label of a ModelInfer: the serving verb of the model's family.
const char* RpcName(model::ModelFamily family) {
  switch (family) {
    case model::ModelFamily::kImageClassifier: return "Classify";
    case model::ModelFamily::kSegmenter: return "Segment";
    case model::ModelFamily::kLanguageModel: return "Generate";
  }
  return "ModelInfer";
}

// A segment request whose images share one size (the one mask tensor holds them all), checked
// from the files' headers before any compute, so that the refusal costs nothing and is
// counted as what it is. A header that cannot be read is the decoder's to refuse, with its
// reason; raw pixels come from one tensor and share its size already.
absl::StatusOr<OutputPlan> MapSegmentRequestOfOneSize(const inference::ModelInferRequest& request,
                                                      const ModelSnapshot& model, int64_t max_images,
                                                      VisionRequest* out) {
  auto plan = MapSegmentRequest(request, model, max_images, out);
  if (!plan.ok()) return plan;
  std::optional<ImageSize> first;
  for (const ImageInput& image : out->images) {
    if (image.kind != ImageInput::Kind::kEncoded) continue;
    auto size = ReadImageSize(absl::string_view(image.encoded.data(), image.encoded.size()));
    if (!size.ok()) continue;
    if (!first) {
      first = *size;
    } else if (size->width != first->width || size->height != first->height) {
      return ImagesDifferInSize(first->width, first->height, size->width, size->height);
    }
  }
  return plan;
}

// Maps the request for the core, serves it, and fills the response from the core's answer.
// The request's bytes (which the core's request views) and the response stay with the caller
// until `finish` has run.
template <typename Result, typename Map, typename ServeFn, typename Fill>
std::shared_ptr<CallHandle> Serve(InferenceCalls& calls, const CallContext& context, const ModelSnapshot& model,
                                  const inference::ModelInferRequest* request, inference::ModelInferResponse* response,
                                  InferenceCalls::Finish finish, Map map, ServeFn serve, Fill fill) {
  VisionRequest core;
  auto plan = map(*request, model, calls.limits().max_images_per_request, &core);
  if (!plan.ok()) {
    calls.RecordRefusal(context, RpcName(*model.family), request->model_name(), plan.status());
    finish(plan.status());
    return nullptr;
  }
  return serve(context, std::move(core),
               [plan = *std::move(plan), request, response, fill,
                finish = std::move(finish)](absl::StatusOr<Result> result) {
                 if (!result.ok()) return finish(result.status());
                 finish(fill(plan, *request, *result, response));
               });
}

}  // namespace

bool ServerReady(InferenceCalls& calls) {
  return calls.repository().ServerReady() && !calls.calls()->draining();
}

absl::StatusOr<bool> ModelReady(InferenceCalls& calls, const std::string& name, const std::string& version) {
  auto model = calls.Describe(name, version);
  if (!model.ok()) {
    if (model.status().code() == absl::StatusCode::kNotFound) return false;
    return model.status();
  }
  return model->state == ModelState::kReady && !calls.calls()->draining();
}

inference::ServerMetadataResponse ServerMetadata(bool http) {
  inference::ServerMetadataResponse out;
  out.set_name(kServerName);
  out.set_version(ELLIPTICAL_SERVER_VERSION);
  out.add_extensions("classification");
  if (http) out.add_extensions("binary_tensor_data");
  return out;
}

absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata(InferenceCalls& calls, const std::string& name,
                                                               const std::string& version) {
  auto model = calls.Describe(name, version);
  if (!model.ok()) return model.status();
  inference::ModelMetadataResponse out;
  FillModelMetadata(*model, &out);
  return out;
}

std::shared_ptr<CallHandle> StartModelInfer(InferenceCalls& calls, CallContext context,
                                            const inference::ModelInferRequest* request,
                                            inference::ModelInferResponse* response, InferenceCalls::Finish finish) {
  const char* rpc = "ModelInfer";  // the verb, once the model's family says which
  auto fail = [&](const absl::Status& status) -> std::shared_ptr<CallHandle> {
    calls.RecordRefusal(context, rpc, request->model_name(), status);
    finish(status);
    return nullptr;
  };
  auto model = calls.Describe(request->model_name(), request->model_version());
  if (!model.ok()) return fail(model.status());
  if (model->family) rpc = RpcName(*model->family);
  auto options = ParseRequestParameters(*request);
  if (!options.ok()) return fail(options.status());
  if (options->timeout) context.deadline = std::min(context.deadline, absl::Now() + *options->timeout);
  if (!model->family) {
    return fail(absl::UnavailableError(absl::StrCat("model \"", model->name, "\" cannot be served: ", model->reason)));
  }
  switch (*model->family) {
    case model::ModelFamily::kImageClassifier:
      return Serve<ClassifyResult>(
          calls, context, *model, request, response, std::move(finish), MapClassifyRequest,
          [&calls](const CallContext& c, VisionRequest q, InferenceCalls::Done<ClassifyResult> d) {
            return calls.Classify(c, std::move(q), std::move(d));
          },
          FillClassifyResponse);
    case model::ModelFamily::kSegmenter:
      return Serve<SegmentResult>(
          calls, context, *model, request, response, std::move(finish), MapSegmentRequestOfOneSize,
          [&calls](const CallContext& c, VisionRequest q, InferenceCalls::Done<SegmentResult> d) {
            return calls.Segment(c, std::move(q), std::move(d));
          },
          FillSegmentResponse);
    case model::ModelFamily::kLanguageModel:
      return fail(absl::FailedPreconditionError(absl::StrCat(
          "model \"", model->name,
          "\" is a language model: the Open Inference Protocol serves this server's vision models; generate "
          "text through the OpenAI completions API (POST /v1/completions) or elliptical.v1.InferenceService/Generate")));
  }
  return fail(absl::InternalError("unknown model family"));
}

absl::StatusOr<inference::RepositoryIndexResponse> RepositoryIndex(const RepositoryCalls& repository,
                                                                  const inference::RepositoryIndexRequest& request) {
  if (absl::Status s = CheckRepositoryName(request.repository_name()); !s.ok()) return s;
  inference::RepositoryIndexResponse out;
  FillRepositoryIndex(repository.Index(request.ready()), &out);
  return out;
}

void StartRepositoryModelLoad(RepositoryCalls& repository, const inference::RepositoryModelLoadRequest& request,
                              InferenceCalls::Finish finish) {
  if (absl::Status s = CheckRepositoryName(request.repository_name()); !s.ok()) return finish(s);
  if (absl::Status s = CheckRepositoryParameters(request.parameters(), /*unload=*/false); !s.ok()) return finish(s);
  repository.Start(RepositoryCalls::Change::kLoad, request.model_name(), std::move(finish));
}

void StartRepositoryModelUnload(RepositoryCalls& repository, const inference::RepositoryModelUnloadRequest& request,
                                InferenceCalls::Finish finish) {
  if (absl::Status s = CheckRepositoryName(request.repository_name()); !s.ok()) return finish(s);
  if (absl::Status s = CheckRepositoryParameters(request.parameters(), /*unload=*/true); !s.ok()) return finish(s);
  repository.Start(RepositoryCalls::Change::kUnload, request.model_name(), std::move(finish));
}

}  // namespace elliptical::server::kserve
