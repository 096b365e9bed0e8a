// The Segmenter against the independent Python reference (tests/reference/
// elliptical_segmenter.py) on real PNG files: padding, position-embedding resize, both decoders,
// sliding windows; and the batch invariance a server relies on.
#include <gtest/gtest.h>

#include "model/nets/image_preprocess.h"
#include "model/api/image_segmenter.h"
#include "model/nets/segmenter_net.h"
#include "model/io/weights.h"
#include "server/input/image_decoder.h"
#include "tests/support/fixtures.h"
#include "tests/support/float32_tolerance.h"
#include "tests/support/tensor_expect.h"

namespace elliptical::model {
namespace {

using elliptical::testing::ExpectTensorNear;
using elliptical::testing::ModelFixturesDir;
using elliptical::testing::ReadFileBytes;

const char* const kModels[] = {"seg-linear", "seg-mask"};
const char* const kImages[] = {"small_20x28", "window_32x32", "large_70x45"};

std::string Dir() { return ModelFixturesDir() + "/segmenter"; }

RgbImage LoadImage(const std::string& stem) {
  auto image = server::DecodeImage(ReadFileBytes(Dir() + "/images/" + stem + ".png"), {});
  EXPECT_TRUE(image.ok()) << image.status();
  return *image;
}

SegmenterNet LoadNet(const std::string& model, AttentionMode mode) {
  auto config = ReadSegmenterConfig(Dir() + "/models/" + model);
  EXPECT_TRUE(config.ok()) << config.status();
  config->attention.mode = mode;
  return elliptical::testing::BuildAndLoad<SegmenterNet>(*config);
}

torch::Tensor Input(const SegmenterNet& net, const std::string& stem) {
  return Normalise(*ImageToTensor(LoadImage(stem), 0), net->config().normalisation);
}

TEST(WindowStarts, CoverTheImageAndEndFlushWithTheBorder) {
  EXPECT_EQ(WindowStarts(32, 32, 16), (std::vector<int64_t>{0}));
  EXPECT_EQ(WindowStarts(70, 32, 16), (std::vector<int64_t>{0, 16, 32, 38}));
  EXPECT_EQ(WindowStarts(48, 32, 16), (std::vector<int64_t>{0, 16}));
  EXPECT_EQ(WindowStarts(45, 32, 32), (std::vector<int64_t>{0, 13}));
}

TEST(Segmenter, MatchesPythonReferenceInBothModes) {
  c10::InferenceMode guard;
  auto expected = elliptical::testing::OpenReference(Dir() + "/expected.safetensors");
  for (const char* model : kModels) {
    for (AttentionMode mode : {AttentionMode::kElliptical, AttentionMode::kDotProduct}) {
      SegmenterNet net = LoadNet(model, mode);
      for (const char* image : kImages) {
        std::string key = std::string(model) + "/" + image;
        if (mode == AttentionMode::kDotProduct) key += "/dot";
        torch::Tensor logits = net->SegmentImage(Input(net, image))[0];
        ExpectTensorNear(logits, elliptical::testing::ReferenceTensor(expected, key), key);
      }
    }
  }
}

TEST(Segmenter, LoadedModelReturnsTheReferenceClassMap) {
  auto expected = elliptical::testing::OpenReference(Dir() + "/expected.safetensors");
  auto segmenter = ImageSegmenter::Load(Dir() + "/models/seg-mask", {});
  ASSERT_TRUE(segmenter.ok()) << segmenter.status();
  EXPECT_EQ((*segmenter)->description().family, ModelFamily::kSegmenter);
  std::vector<RgbImage> images;
  for (const char* image : kImages) images.push_back(LoadImage(image));
  auto result = (*segmenter)->Segment(images, /*with_stats=*/true);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->size(), images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    const Segmentation& s = (*result)[i];
    EXPECT_EQ(s.width, images[i].width);
    EXPECT_EQ(s.height, images[i].height);
    torch::Tensor want =
        elliptical::testing::ReferenceTensor(expected, std::string("seg-mask/") + kImages[i]).argmax(0);
    torch::Tensor got = torch::from_blob(const_cast<int32_t*>(s.class_map.data()),
                                         {s.height, s.width}, torch::kInt32).to(torch::kInt64);
    // Near-ties may flip in the last bit; nothing else may.
    EXPECT_LE((got != want).sum().item<int64_t>(), 2) << kImages[i];
    EXPECT_GT(std::get<0>(at::_unique(got)).numel(), 1) << "a constant map tests nothing";
    ASSERT_EQ(s.stats.size(), 3u);
    EXPECT_FALSE(s.stats[0].elliptical);
    EXPECT_TRUE(s.stats[1].elliptical);
    for (const HeadMetricStats& h : s.stats[2].heads) {
      EXPECT_GT(h.min, 0.0f);
      EXPECT_LE(h.mean, 1.0f);
    }
  }
}

TEST(Segmenter, WindowResultDoesNotDependOnItsBatch) {
  c10::InferenceMode guard;
  SegmenterNet net = LoadNet("seg-mask", AttentionMode::kElliptical);
  torch::Tensor image = Input(net, "large_70x45");
  std::vector<torch::Tensor> windows;
  for (int i = 0; i < 8; ++i) {
    windows.push_back(image.narrow(2, i, 32).narrow(3, 4 * i, 32));
  }
  torch::Tensor batched = net->forward(torch::cat(windows, 0));
  EXPECT_TRUE(torch::equal(batched, net->forward(torch::cat(windows, 0)))) << "a batch computed twice differs";
  // 3 encoder and 2 decoder blocks, width 48, MLP width 192 (tests/fixtures): float32_tolerance.h.
  const double tolerance = elliptical::testing::TransformerReorderTolerance(3 + 2, 192);
  torch::Tensor reversed = net->forward(torch::cat(std::vector<torch::Tensor>(windows.rbegin(), windows.rend()), 0));
  for (int i = 0; i < 8; ++i) {
    torch::Tensor alone = net->forward(windows[i])[0];
    ExpectTensorNear(batched[i], alone, "window " + std::to_string(i) + " in a batch of 8", tolerance);
    ExpectTensorNear(reversed[7 - i], alone, "window " + std::to_string(i) + " at another position", tolerance);
  }
}

// All windows of an image in one forward: what SegmentImage computes, without its grouping.
torch::Tensor AllWindowsAtOnce(SegmenterNet& net, const torch::Tensor& image) {
  using torch::indexing::Slice;
  const int64_t h = image.size(2), w = image.size(3), win = net->config().window_size;
  const auto rows = WindowStarts(h, win, net->config().window_stride);
  const auto cols = WindowStarts(w, win, net->config().window_stride);
  std::vector<torch::Tensor> windows;
  for (int64_t r : rows) {
    for (int64_t c : cols) windows.push_back(image.index({Slice(), Slice(), Slice(r, r + win), Slice(c, c + win)}));
  }
  torch::Tensor logits = net->forward(torch::cat(windows, 0));
  torch::Tensor sum = torch::zeros({1, logits.size(1), h, w}), count = torch::zeros({1, 1, h, w});
  int64_t i = 0;
  for (int64_t r : rows) {
    for (int64_t c : cols) {
      sum.index({Slice(), Slice(), Slice(r, r + win), Slice(c, c + win)}).add_(logits.narrow(0, i++, 1));
      count.index({Slice(), Slice(), Slice(r, r + win), Slice(c, c + win)}).add_(1.0);
    }
  }
  return sum / count;
}

TEST(Segmenter, ALargeImageRunsInBoundedGroupsOfWindowsWithTheSameLogits) {
  c10::InferenceMode guard;
  SegmenterNet net = LoadNet("seg-mask", AttentionMode::kElliptical);
  torch::manual_seed(3);
  const torch::Tensor image = torch::randn({1, 3, 200, 200});  // 12 x 12 windows of 32, stride 16
  ASSERT_GT(12 * 12, kMaxWindowRowsPerForward) << "the image must need several groups";
  int asked = 0;
  torch::Tensor grouped = net->SegmentImage(image, nullptr, [&] { ++asked; return false; });
  ASSERT_TRUE(grouped.defined());
  EXPECT_EQ(asked, (12 * 12 + kMaxWindowRowsPerForward - 1) / kMaxWindowRowsPerForward)
      << "asked once before each group";
  // Only the windows' batch composition differs: float32_tolerance.h, as above.
  ExpectTensorNear(grouped, AllWindowsAtOnce(net, image), "grouped windows",
                   elliptical::testing::TransformerReorderTolerance(3 + 2, 192));
}

TEST(Segmenter, StopsAtTheNextGroupOfWindowsWhenNobodyWaits) {
  c10::InferenceMode guard;
  SegmenterNet net = LoadNet("seg-mask", AttentionMode::kElliptical);
  const torch::Tensor image = torch::randn({1, 3, 200, 200});
  int asked = 0;
  torch::Tensor stopped = net->SegmentImage(image, nullptr, [&] { return ++asked == 2; });
  EXPECT_FALSE(stopped.defined());
  EXPECT_EQ(asked, 2) << "the second group never ran";

  auto segmenter = ImageSegmenter::Load(Dir() + "/models/seg-mask", {});
  ASSERT_TRUE(segmenter.ok()) << segmenter.status();
  auto prepared = (*segmenter)->Prepare(LoadImage("large_70x45"));
  ASSERT_TRUE(prepared.ok());
  const PreparedImage* one = prepared->get();
  auto result = (*segmenter)->SegmentPrepared({&one, 1}, false, [] { return true; });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
}

TEST(Segmenter, ConfigThatDoesNotMatchWeightsNamesTheTensor) {
  auto config = ReadSegmenterConfig(Dir() + "/models/seg-mask");
  ASSERT_TRUE(config.ok());
  config->mask_transformer.depth = 3;
  SegmenterNet net(*config);
  auto weights = SafetensorsFile::Open(config->runtime.weights_path);
  ASSERT_TRUE(weights.ok());
  absl::Status s = LoadWeights(*net, *weights);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("decoder.blocks.2.attn.qkv.weight"), std::string::npos) << s;
}

}  // namespace
}  // namespace elliptical::model
