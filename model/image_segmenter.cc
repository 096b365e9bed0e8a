#include "model/image_segmenter.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/device.h"
#include "model/image_preprocess.h"
#include "model/layer_stats.h"
#include "model/segmenter_net.h"
#include "model/weights.h"

namespace elliptical::model {
namespace {

class Segmenter final : public ImageSegmenter {
 public:
  Segmenter(SegmenterNet net, torch::Device device, torch::ScalarType dtype,
            ModelDescription description)
      : net_(std::move(net)), device_(device), dtype_(dtype), description_(std::move(description)) {}

  absl::StatusOr<std::vector<Segmentation>> Segment(absl::Span<const RgbImage> images,
                                                    bool with_stats) override {
    std::vector<Segmentation> out;
    out.reserve(images.size());
    try {
      c10::InferenceMode inference;
      for (size_t i = 0; i < images.size(); ++i) {
        ELLIPTICAL_ASSIGN_OR_RETURN(torch::Tensor pixels, ImageToTensor(images[i], i));
        torch::Tensor input = Normalise(pixels, net_->config().normalisation).to(device_, dtype_);
        std::vector<LayerTrace> trace;
        torch::Tensor logits = net_->SegmentImage(input, with_stats ? &trace : nullptr);
        torch::Tensor classes = logits[0].argmax(0).to(torch::kCPU, torch::kInt32).contiguous();
        Segmentation s;
        s.height = images[i].height;
        s.width = images[i].width;
        const int32_t* c = classes.data_ptr<int32_t>();
        s.class_map.assign(c, c + classes.numel());
        if (with_stats) s.stats = AverageOverBatch(SummariseTrace(trace, trace.front().token_cosine.size(0)));
        out.push_back(std::move(s));
      }
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("segmenter forward failed: ", e.what_without_backtrace()));
    }
    return out;
  }

  const ModelDescription& description() const override { return description_; }

 private:
  SegmenterNet net_;
  const torch::Device device_;
  const torch::ScalarType dtype_;
  const ModelDescription description_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ImageSegmenter>> ImageSegmenter::Load(const std::string& directory,
                                                                      const LoadOptions& options) {
  ELLIPTICAL_ASSIGN_OR_RETURN(SegmenterConfig config, ReadSegmenterConfig(directory));
  if (!options.device.empty()) config.runtime.device = options.device;
  if (!options.dtype.empty()) config.runtime.dtype = options.dtype;
  ELLIPTICAL_ASSIGN_OR_RETURN(torch::Device device, ResolveDevice(config.runtime.device));
  ELLIPTICAL_ASSIGN_OR_RETURN(torch::ScalarType dtype, ResolveDtype(config.runtime.dtype, device));
  ELLIPTICAL_ASSIGN_OR_RETURN(SafetensorsFile weights,
                              SafetensorsFile::Open(config.runtime.weights_path));
  try {
    SegmenterNet net(config);
    net->to(device, dtype);
    net->eval();
    if (absl::Status s = LoadWeights(*net, weights); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(config.runtime.weights_path, ": ", s.message()));
    }
    ModelDescription d;
    d.family = ModelFamily::kSegmenter;
    d.device = device.str();
    d.dtype = DtypeName(dtype);
    d.attention = config.attention;
    d.image_size = config.window_size;
    d.labels = config.labels;
    d.num_layers = config.encoder.depth;
    d.num_heads = config.encoder.num_heads;
    d.embed_dim = config.encoder.embed_dim;
    for (const auto& p : net->parameters()) d.num_parameters += p.numel();
    return std::unique_ptr<ImageSegmenter>(new Segmenter(std::move(net), device, dtype, std::move(d)));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("loading ", directory, ": ", e.what_without_backtrace()));
  }
}

}  // namespace elliptical::model
