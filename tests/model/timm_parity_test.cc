// The dot-product ViT path against timm's own VisionTransformer (PyPI timm), on a checkpoint
// that tools/convert_checkpoint.py converted from a timm state_dict: the converter and the model
// are checked together against the library users' checkpoints come from.
#include <gtest/gtest.h>

#include "model/config/classifier_config.h"
#include "model/nets/vit.h"
#include "model/io/weights.h"
#include "tests/support/fixtures.h"
#include "tests/support/tensor_expect.h"

namespace elliptical::model {
namespace {

TEST(TimmParity, ConvertedDeiTMatchesTimm) {
  c10::InferenceMode guard;
  const std::string dir = elliptical::testing::ModelFixturesDir() + "/timm";
  auto config = ReadClassifierConfig(dir + "/models/deit-test");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->attention.mode, AttentionMode::kDotProduct);
  VisionTransformer vit(config->vit, config->attention, config->num_classes);
  vit->eval();
  auto weights = SafetensorsFile::Open(config->runtime.weights_path);
  ASSERT_TRUE(weights.ok()) << weights.status();
  ASSERT_TRUE(LoadWeights(*vit, *weights).ok());
  auto expected = elliptical::testing::OpenReference(dir + "/expected.safetensors");
  torch::Tensor input = elliptical::testing::ReferenceTensor(expected, "input");
  elliptical::testing::ExpectTensorNear(vit->forward(input),
                                        elliptical::testing::ReferenceTensor(expected, "logits"),
                                        "timm logits");
}

}  // namespace
}  // namespace elliptical::model
