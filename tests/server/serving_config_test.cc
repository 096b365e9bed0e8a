// config.json's serving keys (server/repository/serving_config.h): here input_form, the one
// input a vision model's KServe v2 metadata lists.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/repository/serving_config.h"

namespace elliptical::server {
namespace {

absl::StatusOr<ServingConfig> Parse(const nlohmann::json& config) { return ParseServingConfig(config, {}); }

TEST(ServingConfigInputForm, DefaultsToImageAndTakesEachForm) {
  auto config = Parse({{"family", "image_classifier"}});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->input_form, InputForm::kImage);
  for (InputForm form : {InputForm::kImage, InputForm::kPixels, InputForm::kTensor}) {
    auto parsed = Parse({{"family", "segmenter"}, {"input_form", InputFormName(form)}});
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->input_form, form);
  }
}

TEST(ServingConfigInputForm, OtherValuesAreRefusedNamingTheKeyAndTheAllowedValues) {
  auto bad = Parse({{"family", "image_classifier"}, {"input_form", "NCHW"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "\"input_form\" must be \"image\", \"pixels\" or \"tensor\", not \"NCHW\"");
  auto number = Parse({{"family", "image_classifier"}, {"input_form", 3}});
  EXPECT_NE(number.status().message().find("not 3"), std::string::npos) << number.status();
  auto lm = Parse({{"family", "language_model"}, {"input_form", "image"}});
  EXPECT_NE(lm.status().message().find("applies to vision models"), std::string::npos) << lm.status();
  // A client-controlled length never reaches the message whole.
  auto long_value = Parse({{"family", "image_classifier"}, {"input_form", std::string(1000, 'x')}});
  EXPECT_LT(long_value.status().message().size(), 120u) << long_value.status();
}

}  // namespace
}  // namespace elliptical::server
