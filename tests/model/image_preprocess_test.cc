// The classifier's preprocessing against Pillow and timm (tests/fixtures/make_model_fixtures.py,
// make_resize_cases): our resize equals Pillow's Image.resize byte for byte on real PNGs, timm's
// Resize + CenterCrop too, and a converted timm DeiT's prepared tensor equals timm's eval
// transform; bad "preprocess" values are refused naming the key.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/api/image_classifier.h"
#include "model/config/classifier_config.h"
#include "model/config/config_schema.h"
#include "model/nets/image_preprocess.h"
#include "model/nets/pil_resize.h"
#include "model/nets/prepared_image.h"
#include "server/input/image_decoder.h"
#include "tests/support/fixtures.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tensor_expect.h"

namespace elliptical::model {
namespace {

using elliptical::testing::ModelFixturesDir;
using elliptical::testing::ReadFileBytes;

std::string TimmDir() { return ModelFixturesDir() + "/timm"; }
std::string ResizeDir() { return TimmDir() + "/resize"; }

RgbImage LoadPng(const std::string& name) {
  auto image = server::DecodeImage(ReadFileBytes(ResizeDir() + "/" + name), {});
  EXPECT_TRUE(image.ok()) << name << ": " << image.status();
  return image.ok() ? *std::move(image) : RgbImage();
}

nlohmann::json Cases() {
  std::ifstream in(ResizeDir() + "/cases.json");
  EXPECT_TRUE(in) << "no " << ResizeDir() << "/cases.json: run the make_model_fixtures test";
  return in ? nlohmann::json::parse(in) : nlohmann::json::object();
}

// Equal sizes and bytes; else how many bytes differ and by how much at most.
void ExpectSameImage(const RgbImage& got, const RgbImage& want, const std::string& what) {
  ASSERT_EQ(got.width, want.width) << what;
  ASSERT_EQ(got.height, want.height) << what;
  ASSERT_EQ(got.pixels.size(), want.pixels.size()) << what;
  int differing = 0, worst = 0;
  for (size_t i = 0; i < got.pixels.size(); ++i) {
    const int d = std::abs(int{got.pixels[i]} - int{want.pixels[i]});
    differing += d != 0;
    worst = std::max(worst, d);
  }
  EXPECT_EQ(differing, 0) << what << ": " << differing << " of " << got.pixels.size()
                          << " bytes differ from Pillow's, by up to " << worst;
}

PilFilter FilterNamed(const std::string& name) {
  return name == "bicubic" ? PilFilter::kBicubic : PilFilter::kBilinear;
}

TEST(PilResize, EqualsPillowByteForByte) {
  const nlohmann::json cases = Cases();
  ASSERT_TRUE(cases.contains("resize"));
  int checked = 0, upscales = 0, downscales = 0;
  for (const auto& c : cases["resize"]) {
    const RgbImage source = LoadPng(c["source"]);
    const int w = c["width"], h = c["height"];
    const std::string what = c["expected"];
    ExpectSameImage(PilResize(source, w, h, FilterNamed(c["filter"])), LoadPng(what), what);
    upscales += w > source.width || h > source.height;
    downscales += w < source.width || h < source.height;
    ++checked;
  }
  EXPECT_GE(checked, 80);
  EXPECT_GE(upscales, 20);
  EXPECT_GE(downscales, 20);
}

TEST(PilResize, WindowEqualsCropOfTheWholeResize) {
  const RgbImage source = LoadPng("src_97x41.png");
  for (PilFilter filter : {PilFilter::kBilinear, PilFilter::kBicubic}) {
    const RgbImage whole = PilResize(source, 50, 60, filter);
    const RgbImage window = PilResizeWindow(source, 50, 60, 7, 11, 20, 30, filter);
    RgbImage crop;
    crop.width = 20;
    crop.height = 30;
    for (int y = 11; y < 41; ++y) {
      const uint8_t* row = whole.pixels.data() + (static_cast<size_t>(y) * 50 + 7) * 3;
      crop.pixels.insert(crop.pixels.end(), row, row + 20 * 3);
    }
    ExpectSameImage(window, crop, "window");
  }
}

TEST(TimmEvalResize, ShorterSideThenCenterCropEqualsTimm) {
  const nlohmann::json cases = Cases();
  ASSERT_TRUE(cases.contains("timm"));
  int checked = 0;
  for (const auto& c : cases["timm"]) {
    ResizePolicy policy;
    policy.mode = ResizeMode::kShorterSideThenCenterCrop;
    policy.interpolation =
        c["filter"] == "bicubic" ? Interpolation::kBicubic : Interpolation::kBilinear;
    policy.crop_pct = c["crop_pct"];
    auto got = ResizeForModel(LoadPng(c["source"]), c["size"], policy);
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectSameImage(*got, LoadPng(c["expected"]), c["expected"]);
    ++checked;
  }
  EXPECT_GE(checked, 60);
}

TEST(TimmEvalResize, TorchvisionSizeAndCropRules) {
  // Resize(35): the long side is int(35 * long / short).
  EXPECT_EQ(ShorterSideSize(40, 30, 35), std::make_pair(int64_t{46}, int64_t{35}));
  EXPECT_EQ(ShorterSideSize(23, 57, 36), std::make_pair(int64_t{36}, int64_t{89}));
  EXPECT_EQ(ShorterSideSize(64, 64, 36), std::make_pair(int64_t{36}, int64_t{36}));
  // CenterCrop: int(round((length - crop) / 2)), halves to even.
  EXPECT_EQ(CenterCropOffset(32, 32), 0);
  EXPECT_EQ(CenterCropOffset(33, 32), 0);  // round(0.5) = 0
  EXPECT_EQ(CenterCropOffset(35, 32), 2);  // round(1.5) = 2
  EXPECT_EQ(CenterCropOffset(37, 32), 2);  // round(2.5) = 2
  EXPECT_EQ(CenterCropOffset(39, 32), 4);  // round(3.5) = 4
  EXPECT_EQ(CenterCropOffset(46, 32), 7);
  EXPECT_EQ(ShorterSideTarget(224, 0.875), 256);
  EXPECT_EQ(ShorterSideTarget(224, 0.9), 248);
  EXPECT_EQ(ShorterSideTarget(32, 1.0), 32);
}

// The converted DeiT's Prepare against timm.data.create_transform with its data config: the
// bytes agree exactly (above), then ToTensor and Normalize are the same float32 operations; a few
// ulps of slack (|x| < 3, one float32 ulp there is 2.4e-7) for a different division kernel.
TEST(TimmEvalResize, PreparedTensorEqualsTimmTransform) {
  const std::string dir = TimmDir() + "/models/deit-test";
  auto config = ReadClassifierConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->resize.mode, ResizeMode::kShorterSideThenCenterCrop);
  EXPECT_EQ(config->resize.interpolation, Interpolation::kBicubic);
  LoadOptions options;
  options.device = "cpu";
  auto classifier = ImageClassifier::Load(dir, options);
  ASSERT_TRUE(classifier.ok()) << classifier.status();
  auto expected = elliptical::testing::OpenReference(TimmDir() + "/preprocess.safetensors");
  int checked = 0;
  for (const auto& [name, entry] : expected.entries()) {
    const std::string stem = name.substr(name.find('/') + 1);
    auto prepared = (*classifier)->Prepare(LoadPng(stem + ".png"));
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    torch::Tensor want = elliptical::testing::ReferenceTensor(expected, name);
    ASSERT_EQ((*prepared)->pixels.sizes(), want.sizes()) << name;
    const double diff = ((*prepared)->pixels - want).abs().max().item<double>();
    EXPECT_LE(diff, 1e-6) << name;
    ++checked;
  }
  EXPECT_GE(checked, 6);
}

// A classifier directory whose config.json is deit-test's with `preprocess` replaced.
class PreprocessConfigTest : public ::testing::Test {
 protected:
  absl::StatusOr<ClassifierConfig> Read(const std::string& preprocess_json) {
    const std::string source = TimmDir() + "/models/deit-test";
    std::ifstream in(source + "/config.json");
    nlohmann::json config = nlohmann::json::parse(in);
    config["preprocess"] = nlohmann::json::parse(preprocess_json);
    const testing::ScopedTempDir scoped("preprocess-config");
    const std::string& dir = scoped.path();
    std::filesystem::copy_file(source + "/labels.txt", dir + "/labels.txt",
                               std::filesystem::copy_options::overwrite_existing);
    std::ofstream(dir + "/config.json") << config.dump();
    return ReadClassifierConfig(dir);
  }

  void ExpectRefused(const std::string& preprocess_json, const std::string& key) {
    auto config = Read(preprocess_json);
    ASSERT_FALSE(config.ok()) << preprocess_json;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << preprocess_json;
    EXPECT_NE(config.status().message().find(key), std::string::npos)
        << preprocess_json << " -> " << config.status();
    EXPECT_NE(config.status().message().find("config.json"), std::string::npos) << config.status();
  }
};

TEST_F(PreprocessConfigTest, DefaultsKeepTheStretch) {
  auto config = Read(R"({"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->resize.mode, ResizeMode::kStretch);
  EXPECT_EQ(config->resize.interpolation, Interpolation::kTorchBilinear);
  config = Read(R"({"resize": "shorter_side_then_center_crop"})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->resize.interpolation, Interpolation::kBicubic);
  EXPECT_EQ(config->resize.crop_pct, 0.875);
  config = Read(R"({"resize": "stretch", "interpolation": "bilinear"})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->resize.interpolation, Interpolation::kBilinear);
  config = Read(R"({"resize": "shorter_side_then_center_crop", "crop_pct": 1})");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->resize.crop_pct, 1.0);
}

TEST_F(PreprocessConfigTest, BadValuesAreRefusedNamingTheKey) {
  const std::string crop = R"({"resize": "shorter_side_then_center_crop", "crop_pct": )";
  // (JSON text past a double, 1e400, is refused by the JSON parser itself.)
  for (const char* value : {"0", "-0.5", "-0", "1.0001", "2", "1e-300", "3e-3", "\"0.9\"", "null",
                            "[0.9]", "true", "18446744073709551615", "-9223372036854775808"}) {
    ExpectRefused(crop + value + "}", "preprocess.crop_pct");
  }
  ExpectRefused(R"({"crop_pct": 0.9})", "preprocess.crop_pct");  // stretch has no crop
  for (const char* value : {"\"lanczos\"", "\"BICUBIC\"", "3", "null", "\"\""}) {
    ExpectRefused(std::string(R"({"interpolation": )") + value + "}", "preprocess.interpolation");
  }
  ExpectRefused(R"({"resize": "shorter_side_then_center_crop", "interpolation": "torch_bilinear"})",
                "preprocess.interpolation");
  // Past float's range: refused, never converted.
  ExpectRefused(R"({"mean": [1e300, 0, 0]})", "preprocess.mean");
  ExpectRefused(R"({"std": [1, 1e39, 1]})", "preprocess.std");
  for (const char* value : {"\"squash\"", "1", "{}"}) {
    ExpectRefused(std::string(R"({"resize": )") + value + "}", "preprocess.resize");
  }
}

TEST(PreprocessSchema, ResizeKeysBelongToTheClassifierOnly) {
  const nlohmann::json config = nlohmann::json::parse(
      R"({"preprocess": {"resize": "shorter_side_then_center_crop", "crop_pct": 0.9,
                         "interpolation": "bicubic", "mean": [0, 0, 0], "std": [1, 1, 1]}})");
  EXPECT_TRUE(CheckKnownKeys(config, FamilyKeys(ModelFamily::kImageClassifier), "c").ok());
  // The segmenter keeps each image's resolution: a resize key there is a mistake.
  absl::Status segmenter = CheckKnownKeys(config, FamilyKeys(ModelFamily::kSegmenter), "s");
  EXPECT_FALSE(segmenter.ok());
  EXPECT_NE(segmenter.message().find("preprocess."), std::string::npos) << segmenter;
}

}  // namespace
}  // namespace elliptical::model
