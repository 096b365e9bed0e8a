#include "model/config/config_schema.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/config/model_dir.h"
#include "model/config/segmenter_config.h"
#include "model/config/vision_fields.h"
#include "tests/support/fixtures.h"
#include "tests/support/temp_dir.h"

namespace elliptical::model {
namespace {

using nlohmann::json;

// What the server will check a config.json against.
KeySchema ServedKeys(ModelFamily family) {
  KeySchema schema = FamilyKeys(family);
  Merge(ServingKeys(), &schema);
  return schema;
}

absl::Status Check(const json& config, ModelFamily family) {
  return CheckKnownKeys(config, ServedKeys(family), "m/config.json");
}

TEST(ConfigSchema, MisspelledNestedKeyNamesPathFileAndSuggestion) {
  const absl::Status s = Check(
      json::parse(R"({"family": "image_classifier", "batching": {"max_batch_sise": 4}})"),
      ModelFamily::kImageClassifier);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "m/config.json: unknown key \"batching.max_batch_sise\"; did you mean \"max_batch_size\"? "
            "(known here: low_priority_max_wait_ms, max_batch_size, max_queue_delay_ms, max_queue_size)");
}

TEST(ConfigSchema, TranspositionIsOneEdit) {
  const absl::Status s =
      Check(json::parse(R"({"vit": {"patch_size": 4, "emebd_dim": 8}})"), ModelFamily::kSegmenter);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("unknown key \"vit.emebd_dim\"; did you mean \"embed_dim\"?"),
            std::string::npos)
      << s;
}

TEST(ConfigSchema, UnknownTopLevelKeyFails) {
  const absl::Status near = Check(json::parse(R"({"family": "segmenter", "lables": "labels.txt"})"),
                                  ModelFamily::kSegmenter);
  EXPECT_EQ(near.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(near.message().find("m/config.json: unknown key \"lables\"; did you mean \"labels\"?"),
            std::string::npos)
      << near;

  // Nothing within two edits: no guess, but the keys that would be understood.
  const absl::Status far =
      Check(json::parse(R"({"description": "a model"})"), ModelFamily::kLanguageModel);
  EXPECT_EQ(far.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(far.message().find("unknown key \"description\" (known here: allow_tf32, attention, batching, "),
            std::string::npos)
      << far;
  EXPECT_EQ(far.message().find("did you mean"), std::string::npos) << far;
}

TEST(ConfigSchema, KeysBelongToTheirFamily) {
  EXPECT_FALSE(Check(json::parse(R"({"decoder": {"type": "linear"}})"), ModelFamily::kImageClassifier).ok());
  EXPECT_FALSE(Check(json::parse(R"({"lm": {}})"), ModelFamily::kSegmenter).ok());
  EXPECT_FALSE(Check(json::parse(R"({"vit": {}})"), ModelFamily::kLanguageModel).ok());
  // scale_mode is the language model's; the server's generation limits are everyone's.
  EXPECT_FALSE(Check(json::parse(R"({"generation": {"scale_mode": "prefix"}})"),
                     ModelFamily::kImageClassifier)
                   .ok());
  EXPECT_TRUE(Check(json::parse(R"({"generation": {"scale_mode": "prefix", "max_running": 2}})"),
                    ModelFamily::kLanguageModel)
                  .ok());
}

TEST(ConfigSchema, NonObjectWhereAnObjectIsExpectedFails) {
  const absl::Status number = Check(json::parse(R"({"vit": 32})"), ModelFamily::kImageClassifier);
  EXPECT_EQ(number.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(number.message(), "m/config.json: \"vit\" must be an object, not 32");
  const absl::Status null = Check(json::parse(R"({"batching": null})"), ModelFamily::kSegmenter);
  EXPECT_EQ(null.message(), "m/config.json: \"batching\" must be an object, not null");
  EXPECT_FALSE(CheckKnownKeys(json::array(), ServedKeys(ModelFamily::kSegmenter), "f").ok());
}

TEST(ConfigSchema, LeavesAreNotDescendedInto) {
  EXPECT_TRUE(Check(json::parse(R"({"preprocess": {"mean": [0.5, 0.5, 0.5]},
                                    "attention": {"elliptical_layers": [1, 2], "score_scale": null}})"),
                    ModelFamily::kImageClassifier)
                  .ok());
}

TEST(ConfigSchema, MergeUnitesObjectsAndKeepsLeavesLeaves) {
  KeySchema into = KeySchema::Of({"a"}).With("s", KeySchema::Of({"x"})).With("t", KeySchema::Of({"y"}));
  Merge(KeySchema::Of({"b", "t"}).With("s", KeySchema::Of({"z"})), &into);
  EXPECT_TRUE(CheckKnownKeys(json::parse(R"({"a": 1, "b": 2, "s": {"x": 1, "z": 2}, "t": 3})"), into, "f").ok());
  EXPECT_FALSE(CheckKnownKeys(json::parse(R"({"s": {"w": 1}})"), into, "f").ok());
}

// Every config.json under `root`, checked as the server will; returns the families seen.
std::set<ModelFamily> CheckAllUnder(const std::filesystem::path& root) {
  std::set<ModelFamily> families;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (entry.path().filename() != "config.json") continue;
    auto dir = ReadModelDirectory(entry.path().parent_path().string());
    if (!dir.ok()) {
      ADD_FAILURE() << dir.status();
      continue;
    }
    families.insert(dir->family);
    const absl::Status s = CheckKnownKeys(dir->config, ServedKeys(dir->family), entry.path().string());
    EXPECT_TRUE(s.ok()) << s;
  }
  return families;
}

const std::set<ModelFamily> kAllFamilies = {ModelFamily::kImageClassifier, ModelFamily::kSegmenter,
                                            ModelFamily::kLanguageModel};

TEST(ConfigSchema, ShippedModelsPass) {
  EXPECT_EQ(CheckAllUnder(std::filesystem::path(ELLIPTICAL_SOURCE_DIR) / "models"), kAllFamilies);
}

TEST(ConfigSchema, GeneratedFixturesPass) {
  const std::filesystem::path fixtures = std::filesystem::path(testing::BuildDir()) / "fixtures";
  ASSERT_TRUE(std::filesystem::is_directory(fixtures))
      << fixtures << " is missing: run the fixture scripts (ctest does) or set ELLIPTICAL_BUILD_DIR";
  EXPECT_EQ(CheckAllUnder(fixtures), kAllFamilies);
}

// Found by tests/fuzz/model_config_fuzz.cc (regressions/model_config/ keeps the inputs).
class ConfigNumbers : public ::testing::Test {
 protected:
  // Each call gets its own directory, kept until the test ends (readers may return paths in it).
  std::string Write(json config) {
    dirs_.push_back(std::make_unique<testing::ScopedTempDir>("config-numbers"));
    const std::string& dir = dirs_.back()->path();
    std::ofstream(dir + "/config.json") << config.dump();
    return dir;
  }
  json Segmenter() {
    std::ifstream in(std::string(ELLIPTICAL_SOURCE_DIR) + "/models/digit-scenes-segmenter/config.json");
    json config = json::parse(in);
    config.erase("labels");
    return config;
  }

 private:
  std::vector<std::unique_ptr<testing::ScopedTempDir>> dirs_;
};

TEST_F(ConfigNumbers, NumbersBeyondIntRangeAreRefusedWithTheirPath) {
  json config = Segmenter();
  config["vit"]["image_size"] = 1e30;  // cast to int: undefined behaviour
  auto dir = ReadModelDirectory(Write(config));
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("\"vit.image_size\" is 1e+30"), std::string::npos) << dir.status();
  config = Segmenter();
  config["attention"]["elliptical_layers"] = {1, 4294967298};  // wrapped to 2
  dir = ReadModelDirectory(Write(config));
  ASSERT_FALSE(dir.ok());
  EXPECT_NE(dir.status().message().find("attention.elliptical_layers[1]"), std::string::npos) << dir.status();
  config = Segmenter();
  config["generation"] = {{"max_cache_mb", 1e300}};  // serving_config.cc: cast to int64
  EXPECT_FALSE(ReadModelDirectory(Write(config)).ok());
}

TEST_F(ConfigNumbers, LargestWindowDoesNotOverflowItsDefaultStride) {
  json config = Segmenter();
  config["inference"] = {{"window_size", 2147483647}};
  auto segmenter = ReadSegmenterConfig(Write(config));
  ASSERT_TRUE(segmenter.ok()) << segmenter.status();
  EXPECT_EQ(segmenter->window_stride, 1431655764);
}

TEST_F(ConfigNumbers, ClassCountIsBounded) {
  json config = Segmenter();
  config["num_classes"] = 2000000000;  // made 2e9 label strings before reading the weights
  auto dir = ReadModelDirectory(Write(config));
  ASSERT_TRUE(dir.ok()) << dir.status();
  auto fields = ParseVisionFields(*dir);
  ASSERT_FALSE(fields.ok());
  EXPECT_NE(fields.status().message().find("up to 1048576"), std::string::npos) << fields.status();
}

}  // namespace
}  // namespace elliptical::model
