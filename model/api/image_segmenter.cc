#include "model/api/image_segmenter.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/io/device.h"
#include "model/nets/image_preprocess.h"
#include "model/nets/layer_stats.h"
#include "model/io/module_loader.h"
#include "model/nets/prepared_image.h"
#include "model/nets/packed_linear.h"
#include "model/nets/segmenter_net.h"
#include "model/io/weights.h"

namespace elliptical::model {

absl::StatusOr<std::vector<Segmentation>> ImageSegmenter::Segment(absl::Span<const RgbImage> images,
                                                                  bool with_stats) {
  std::vector<Segmentation> out;
  for (size_t i = 0; i < images.size(); ++i) {
    auto prepared = Prepare(images[i]);
    if (!prepared.ok()) {
      return absl::Status(prepared.status().code(),
                          absl::StrCat("image ", i, ": ", prepared.status().message()));
    }
    const PreparedImage* one = prepared->get();
    ELLIPTICAL_ASSIGN_OR_RETURN(auto result, SegmentPrepared({&one, 1}, with_stats));
    out.push_back(std::move(result[0]));
  }
  return out;
}

namespace {

class Segmenter final : public ImageSegmenter {
 public:
  Segmenter(SegmenterNet net, torch::Device device, torch::ScalarType dtype,
            ModelDescription description, std::shared_ptr<const Float32MathPolicy::Vote> tf32_vote)
      : net_(std::move(net)),
        device_(device),
        dtype_(dtype),
        description_(std::move(description)),
        tf32_vote_(std::move(tf32_vote)) {}

  absl::StatusOr<std::shared_ptr<const PreparedImage>> Prepare(const RgbImage& image) const override {
    try {
      c10::InferenceMode inference;
      // At its own size (the segmenter pads and slides windows); as bytes for a CUDA model, as in
      // the classifier.
      ELLIPTICAL_ASSIGN_OR_RETURN(PreparedImage prepared,
                                  PrepareImage(image, /*size=*/0, net_->config().normalisation, {},
                                               /*keep_bytes=*/device_.is_cuda()));
      return std::make_shared<const PreparedImage>(std::move(prepared));
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("preprocessing failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<std::shared_ptr<const PreparedImage>> PrepareTensor(const PixelTensor& tensor) const override {
    return PrepareClientTensor(tensor);
  }

  absl::StatusOr<std::vector<Segmentation>> SegmentPrepared(absl::Span<const PreparedImage* const> images,
                                                            bool with_stats, const StopCheck& stop) override {
    if (images.empty()) return std::vector<Segmentation>();
    const int64_t b = static_cast<int64_t>(images.size());
    const int64_t h = images[0]->pixels.size(2), w = images[0]->pixels.size(3);
    for (const PreparedImage* image : images) {
      if (image->pixels.size(2) != h || image->pixels.size(3) != w) {
        return absl::InvalidArgumentError("a segmentation batch needs images of one size");
      }
    }
    try {
      c10::InferenceMode inference;
      std::vector<LayerTrace> trace;
      torch::Tensor logits =
          net_->SegmentImage(ToDevice(images, device_, dtype_), with_stats ? &trace : nullptr, stop);
      if (!logits.defined()) return absl::CancelledError("stopped: no caller waits for this batch");
      // Synchronises this thread's current stream only (its own on CUDA), as in the classifier.
      torch::Tensor classes = logits.argmax(1).to(torch::kCPU, torch::kInt32).contiguous();  // (B, H, W)
      std::vector<std::vector<std::vector<LayerStats>>> per_image(b);  // [image][window][layer]
      if (with_stats) {
        auto rows = SummariseTrace(trace, trace.front().token_cosine.size(0));
        for (size_t row = 0; row < rows.size(); ++row) per_image[row % b].push_back(std::move(rows[row]));
      }
      std::vector<Segmentation> out(b);
      for (int64_t i = 0; i < b; ++i) {
        out[i].height = static_cast<int>(h);
        out[i].width = static_cast<int>(w);
        const int32_t* c = classes[i].data_ptr<int32_t>();
        out[i].class_map.assign(c, c + h * w);
        if (with_stats) out[i].stats = AverageOverBatch(per_image[i]);
      }
      return out;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("segmenter forward failed: ", e.what_without_backtrace()));
    }
  }

  const ModelDescription& description() const override { return description_; }

 private:
  SegmenterNet net_;
  const torch::Device device_;
  const torch::ScalarType dtype_;
  const ModelDescription description_;
  const std::shared_ptr<const Float32MathPolicy::Vote> tf32_vote_;  // model/io/precision.h
};

}  // namespace

absl::StatusOr<std::unique_ptr<ImageSegmenter>> ImageSegmenter::Load(const std::string& directory,
                                                                      const LoadOptions& options) {
  ELLIPTICAL_ASSIGN_OR_RETURN(SegmenterConfig config, ReadSegmenterConfig(directory));
  ELLIPTICAL_ASSIGN_OR_RETURN(Placement placement,
                              ResolvePlacement(config.runtime, options, ModelFamily::kSegmenter));
  return GuardLoad<std::unique_ptr<ImageSegmenter>>(
      directory, [&]() -> absl::StatusOr<std::unique_ptr<ImageSegmenter>> {
        SegmenterNet net(config);
        ELLIPTICAL_RETURN_IF_ERROR(PlaceAndLoad(*net, placement, config.runtime.weights_path));
        const int64_t grid = config.window_size / config.encoder.patch_size;
        PackLinears(*net, 1 + grid * grid);  // one window's tokens
        ModelDescription d = DescribeModule(ModelFamily::kSegmenter, placement, config.attention, *net);
        d.image_size = config.window_size;
        d.labels = config.labels;
        d.num_layers = config.encoder.depth;
        d.num_heads = config.encoder.num_heads;
        d.embed_dim = config.encoder.embed_dim;
        return std::unique_ptr<ImageSegmenter>(
            new Segmenter(std::move(net), placement.device, placement.precision.dtype, std::move(d),
                          placement.tf32_vote));
      });
}

}  // namespace elliptical::model
