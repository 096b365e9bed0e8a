#include "model/api/image_classifier.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/config/classifier_config.h"
#include "model/io/device.h"
#include "model/nets/image_preprocess.h"
#include "model/nets/prepared_image.h"
#include "model/nets/layer_stats.h"
#include "model/io/module_loader.h"
#include "model/nets/packed_linear.h"
#include "model/nets/vit.h"
#include "model/io/weights.h"

namespace elliptical::model {

absl::StatusOr<std::vector<Classification>> ImageClassifier::Classify(absl::Span<const RgbImage> images,
                                                                      bool with_stats) {
  std::vector<std::shared_ptr<const PreparedImage>> prepared;
  std::vector<const PreparedImage*> pointers;
  for (const RgbImage& image : images) {
    auto p = Prepare(image);
    if (!p.ok()) {
      return absl::Status(p.status().code(),
                          absl::StrCat("image ", prepared.size(), ": ", p.status().message()));
    }
    prepared.push_back(*std::move(p));
    pointers.push_back(prepared.back().get());
  }
  return ClassifyPrepared(pointers, with_stats);
}

namespace {

class ViTClassifier final : public ImageClassifier {
 public:
  ViTClassifier(ClassifierConfig config, VisionTransformer vit, torch::Device device,
                torch::ScalarType dtype, ModelDescription description,
                std::shared_ptr<const Float32MathPolicy::Vote> tf32_vote)
      : config_(std::move(config)),
        vit_(std::move(vit)),
        device_(device),
        dtype_(dtype),
        description_(std::move(description)),
        tf32_vote_(std::move(tf32_vote)) {}

  absl::StatusOr<std::shared_ptr<const PreparedImage>> Prepare(const RgbImage& image) const override {
    try {
      c10::InferenceMode inference;
      // A CUDA model takes 8-bit images as bytes (a quarter of the host->device copy); on the CPU
      // there is no copy to save, and normalising here keeps that work on the request threads.
      ELLIPTICAL_ASSIGN_OR_RETURN(
          PreparedImage prepared, PrepareImage(image, config_.vit.image_size, config_.normalisation,
                                               config_.resize, /*keep_bytes=*/device_.is_cuda()));
      return std::make_shared<const PreparedImage>(std::move(prepared));
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("preprocessing failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<std::shared_ptr<const PreparedImage>> PrepareTensor(const PixelTensor& tensor) const override {
    const int size = config_.vit.image_size;
    if (tensor.width != size || tensor.height != size) {
      return absl::InvalidArgumentError(absl::StrCat("tensor is 3 x ", tensor.height, " x ", tensor.width,
                                                     "; the model takes 3 x ", size, " x ", size));
    }
    return PrepareClientTensor(tensor);
  }

  absl::StatusOr<std::vector<Classification>> ClassifyPrepared(
      absl::Span<const PreparedImage* const> images, bool with_stats, const StopCheck& stop) override {
    if (images.empty()) return std::vector<Classification>();
    if (ShouldStop(stop)) return absl::CancelledError("stopped: no caller waits for this batch");
    try {
      c10::InferenceMode inference;
      torch::Tensor batch = ToDevice(images, device_, dtype_);
      std::vector<LayerTrace> trace;
      torch::Tensor logits = vit_->forward(batch, with_stats ? &trace : nullptr);
      // The copy back waits for this thread's current stream only (its own on CUDA: runtime.h,
      // UseOwnStreamOnThisThread), not for the batches other instances run at the same time.
      torch::Tensor probs = torch::softmax(logits.to(torch::kFloat32), -1).to(torch::kCPU).contiguous();

      std::vector<Classification> out(images.size());
      const float* p = probs.data_ptr<float>();
      for (size_t i = 0; i < images.size(); ++i) {
        out[i].probabilities.assign(p + i * config_.num_classes, p + (i + 1) * config_.num_classes);
      }
      if (with_stats) {
        auto stats = SummariseTrace(trace, static_cast<int64_t>(images.size()));
        for (size_t i = 0; i < images.size(); ++i) out[i].stats = std::move(stats[i]);
      }
      return out;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("classifier forward failed: ", e.what_without_backtrace()));
    }
  }

  const ModelDescription& description() const override { return description_; }

 private:
  const ClassifierConfig config_;
  VisionTransformer vit_;
  const torch::Device device_;
  const torch::ScalarType dtype_;
  const ModelDescription description_;
  const std::shared_ptr<const Float32MathPolicy::Vote> tf32_vote_;  // model/io/precision.h
};

}  // namespace

absl::StatusOr<std::unique_ptr<ImageClassifier>> ImageClassifier::Load(const std::string& directory,
                                                                        const LoadOptions& options) {
  ELLIPTICAL_ASSIGN_OR_RETURN(ClassifierConfig config, ReadClassifierConfig(directory));
  ELLIPTICAL_ASSIGN_OR_RETURN(Placement placement,
                              ResolvePlacement(config.runtime, options, ModelFamily::kImageClassifier));
  return GuardLoad<std::unique_ptr<ImageClassifier>>(
      directory, [&]() -> absl::StatusOr<std::unique_ptr<ImageClassifier>> {
        VisionTransformer vit(config.vit, config.attention, config.num_classes);
        ELLIPTICAL_RETURN_IF_ERROR(PlaceAndLoad(*vit, placement, config.runtime.weights_path));
        // The matmuls see one image's tokens per batch row block.
        PackLinears(*vit, 1 + config.vit.num_patches());
        ModelDescription d =
            DescribeModule(ModelFamily::kImageClassifier, placement, config.attention, *vit);
        d.image_size = config.vit.image_size;
        d.labels = config.labels;
        d.num_layers = config.vit.depth;
        d.num_heads = config.vit.num_heads;
        d.embed_dim = config.vit.embed_dim;
        return std::unique_ptr<ImageClassifier>(new ViTClassifier(
            std::move(config), std::move(vit), placement.device, placement.precision.dtype, std::move(d),
            placement.tf32_vote));
      });
}

}  // namespace elliptical::model
