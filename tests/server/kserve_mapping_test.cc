// The Open Inference Protocol's tensor mapping (server/protocols/kserve/tensors.h, request_mapping.h,
// response_mapping.h) and its REST bodies (server/protocols/kserve/kserve_json.h): v2 tensors in,
// elliptical.v1 requests out, and back.
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "server/protocols/kserve/kserve_json.h"
#include "server/protocols/kserve/request_mapping.h"
#include "server/protocols/kserve/response_mapping.h"

namespace elliptical::server::kserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr int64_t kMaxImages = 64;

ModelSnapshot Classifier(int classes = 3) {
  ModelSnapshot s;
  s.name = "vit";
  s.family = model::ModelFamily::kImageClassifier;
  s.state = ModelState::kReady;
  s.version = 1;
  s.ready_versions = {1};
  model::ModelDescription d;
  d.family = model::ModelFamily::kImageClassifier;
  for (int i = 0; i < classes; ++i) d.labels.push_back("c" + std::to_string(i));
  s.description = d;
  return s;
}

ModelSnapshot Segmenter() {
  ModelSnapshot s = Classifier(2);
  s.name = "seg";
  s.family = model::ModelFamily::kSegmenter;
  s.description->family = model::ModelFamily::kSegmenter;
  return s;
}

std::string Le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

ModelInferRequest::InferInputTensor* AddInput(ModelInferRequest* r, const std::string& name,
                                              const std::string& datatype, std::vector<int64_t> shape) {
  auto* t = r->add_inputs();
  t->set_name(name);
  t->set_datatype(datatype);
  for (int64_t d : shape) t->add_shape(d);
  return t;
}

ModelInferRequest RawImages(const std::vector<std::string>& files) {
  ModelInferRequest r;
  r.set_model_name("vit");
  AddInput(&r, "image", "BYTES", {static_cast<int64_t>(files.size())});
  std::string raw;
  for (const std::string& f : files) raw += Le32(static_cast<uint32_t>(f.size())) + f;
  r.add_raw_input_contents(raw);
  return r;
}

absl::StatusCode MapCode(const ModelInferRequest& r) {
  VisionRequest out;
  return MapClassifyRequest(r, Classifier(), kMaxImages, &out).status().code();
}

std::string ErrorOf(const ModelInferRequest& r) {
  VisionRequest out;
  return std::string(MapClassifyRequest(r, Classifier(), kMaxImages, &out).status().message());
}

TEST(KServeMapping, RawBytesImagesAreSplitByTheirLengthPrefixes) {
  ModelInferRequest r = RawImages({"png-one", "", "jpeg"});
  VisionRequest out;
  auto plan = MapClassifyRequest(r, Classifier(), kMaxImages, &out);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(out.images.size(), 3u);
  EXPECT_EQ(out.images[0].encoded, "png-one");
  EXPECT_EQ(out.images[1].encoded, "");
  EXPECT_EQ(out.images[2].encoded, "jpeg");
  // Views into the request's raw contents, not copies.
  EXPECT_EQ(out.images[0].encoded.data(), r.raw_input_contents(0).data() + 4);
  EXPECT_EQ(out.model_name, "vit");
  EXPECT_TRUE(plan->raw);
  EXPECT_EQ(plan->top_k, kDefaultTopK);
  EXPECT_EQ(plan->outputs.size(), 4u);
}

TEST(KServeMapping, TypedBytesImagesAndShapeNx1) {
  ModelInferRequest r;
  r.set_model_name("vit");
  auto* t = AddInput(&r, "image", "BYTES", {2, 1});
  t->mutable_contents()->add_bytes_contents("a");
  t->mutable_contents()->add_bytes_contents("b");
  VisionRequest out;
  auto plan = MapClassifyRequest(r, Classifier(), kMaxImages, &out);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(out.images.size(), 2u);
  EXPECT_EQ(out.images[1].encoded, "b");
  EXPECT_FALSE(plan->raw);
}

TEST(KServeMapping, RawBytesThatDoNotMatchTheShapeAreRefused) {
  ModelInferRequest truncated = RawImages({"abcdef"});
  truncated.mutable_raw_input_contents(0)->resize(7);  // length 6, only 3 bytes follow
  EXPECT_EQ(MapCode(truncated), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ErrorOf(truncated).find("input \"image\""), std::string::npos) << ErrorOf(truncated);

  ModelInferRequest short_prefix = RawImages({"a"});
  *short_prefix.mutable_raw_input_contents(0) = std::string("\x01\x00", 2);
  EXPECT_EQ(MapCode(short_prefix), absl::StatusCode::kInvalidArgument);

  ModelInferRequest huge_length = RawImages({"a"});
  *huge_length.mutable_raw_input_contents(0) = Le32(0xFFFFFFFFu) + "abc";
  EXPECT_EQ(MapCode(huge_length), absl::StatusCode::kInvalidArgument);

  ModelInferRequest left_over = RawImages({"a", "b"});
  left_over.mutable_inputs(0)->set_shape(0, 1);
  EXPECT_EQ(MapCode(left_over), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ErrorOf(left_over).find("after"), std::string::npos) << ErrorOf(left_over);

  ModelInferRequest too_many = RawImages({"a"});
  too_many.mutable_inputs(0)->set_shape(0, 1'000'000'000);  // no allocation for what cannot fit
  EXPECT_EQ(MapCode(too_many), absl::StatusCode::kInvalidArgument);
}

TEST(KServeMapping, SplitRawBytesChecksEveryLength) {
  const std::string raw = Le32(2) + "hi" + Le32(0);
  auto parts = SplitRawBytes(raw, 2, "x");
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ((*parts)[0], "hi");
  EXPECT_EQ((*parts)[1], "");
  EXPECT_FALSE(SplitRawBytes(raw, 3, "x").ok());
  EXPECT_FALSE(SplitRawBytes(raw, 1, "x").ok());
  EXPECT_FALSE(SplitRawBytes(raw, -1, "x").ok());
  EXPECT_EQ(JoinRawBytes({"hi", ""}), raw);
}

TEST(KServeMapping, PixelsRawAndTypedGiveTheSameImages) {
  ModelInferRequest raw;
  raw.set_model_name("vit");
  AddInput(&raw, "pixels", "UINT8", {2, 1, 2, 3});
  raw.add_raw_input_contents(std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xff", 12));
  ModelInferRequest typed;
  typed.set_model_name("vit");
  auto* t = AddInput(&typed, "pixels", "UINT8", {2, 1, 2, 3});
  for (uint32_t v : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 255}) t->mutable_contents()->add_uint_contents(v);
  for (const ModelInferRequest* r : {&raw, &typed}) {
    VisionRequest out;
    ASSERT_TRUE(MapClassifyRequest(*r, Classifier(), kMaxImages, &out).ok());
    ASSERT_EQ(out.images.size(), 2u);
    const ImageInput& second = out.images[1];
    EXPECT_EQ(second.kind, ImageInput::Kind::kPixels);
    EXPECT_EQ(second.width, 2);
    EXPECT_EQ(second.height, 1);
    EXPECT_EQ(second.channels, 3);
    // Moved, the request still views the bytes it owns (typed contents are packed once).
    VisionRequest moved = std::move(out);
    EXPECT_EQ(moved.images[1].pixels, std::string("\x07\x08\x09\x0a\x0b\xff", 6));
  }
}

TEST(KServeMapping, PixelShapesAreChecked) {
  auto pixels = [](std::vector<int64_t> shape, size_t bytes) {
    ModelInferRequest r;
    r.set_model_name("vit");
    AddInput(&r, "pixels", "UINT8", shape);
    r.add_raw_input_contents(std::string(bytes, '\0'));
    return r;
  };
  EXPECT_EQ(MapCode(pixels({1, 2, 2, 3}, 12)), absl::StatusCode::kOk);
  EXPECT_EQ(MapCode(pixels({1, 2, 2, 3}, 11)), absl::StatusCode::kInvalidArgument);  // truncated
  EXPECT_EQ(MapCode(pixels({1, 2, 2, 3}, 13)), absl::StatusCode::kInvalidArgument);  // oversized
  EXPECT_EQ(MapCode(pixels({1, 2, 2, 2}, 8)), absl::StatusCode::kInvalidArgument);   // C = 2
  EXPECT_EQ(MapCode(pixels({2, 2, 3}, 12)), absl::StatusCode::kInvalidArgument);     // rank 3
  EXPECT_EQ(MapCode(pixels({0, 2, 2, 3}, 0)), absl::StatusCode::kInvalidArgument);   // no images
  EXPECT_EQ(MapCode(pixels({1, -2, 2, 3}, 12)), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MapCode(pixels({65, 1, 1, 1}, 65)), absl::StatusCode::kInvalidArgument);  // > max images
  // The product overflows int64: refused by division, whatever the data.
  const int64_t big = int64_t{1} << 40;
  ModelInferRequest overflow = pixels({1, big, big, 3}, 12);
  EXPECT_EQ(MapCode(overflow), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ErrorOf(overflow).find("INT64_MAX"), std::string::npos) << ErrorOf(overflow);
  // Typed contents: a value beyond UINT8 and a count mismatch.
  ModelInferRequest typed;
  typed.set_model_name("vit");
  auto* t = AddInput(&typed, "pixels", "UINT8", {1, 1, 1, 1});
  t->mutable_contents()->add_uint_contents(256);
  EXPECT_EQ(MapCode(typed), absl::StatusCode::kInvalidArgument);
  t->mutable_contents()->set_uint_contents(0, 7);
  t->mutable_contents()->add_uint_contents(7);
  EXPECT_EQ(MapCode(typed), absl::StatusCode::kInvalidArgument);
}

TEST(KServeMapping, UnknownInputsDatatypesAndParametersAreRefused) {
  ModelInferRequest r = RawImages({"a"});
  r.mutable_inputs(0)->set_datatype("UINT8");
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ErrorOf(r).find("not BYTES"), std::string::npos) << ErrorOf(r);

  r = RawImages({"a"});
  r.mutable_inputs(0)->set_name("INPUT0");
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ErrorOf(r).find("unknown input \"INPUT0\""), std::string::npos) << ErrorOf(r);

  r = RawImages({"a"});
  AddInput(&r, "pixels", "UINT8", {1, 1, 1, 1});
  r.add_raw_input_contents(std::string(1, '\0'));
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);  // two inputs

  r = RawImages({"a"});
  r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("b");  // raw and typed
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);

  r = RawImages({"a"});
  (*r.mutable_parameters())["topk"].set_int64_param(3);
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);
  r = RawImages({"a"});
  (*r.mutable_parameters())["top_k"].set_int64_param(0);
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);
  r = RawImages({"a"});
  (*r.mutable_parameters())["top_k"].set_string_param("3");
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);

  r = RawImages({"a"});
  r.add_outputs()->set_name("logits");
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);
  r = RawImages({"a"});
  auto* o = r.add_outputs();
  o->set_name("top_labels");
  (*o->mutable_parameters())["classification"].set_int64_param(2);  // only on probabilities
  EXPECT_EQ(MapCode(r), absl::StatusCode::kInvalidArgument);
}

TEST(KServeMapping, PriorityAndTimeoutParameters) {
  ModelInferRequest r = RawImages({"a"});
  (*r.mutable_parameters())["priority"].set_uint64_param(1);  // Triton: 1 is the highest
  (*r.mutable_parameters())["timeout"].set_int64_param(2500);
  (*r.mutable_parameters())["top_k"].set_int64_param(2);
  auto options = ParseRequestParameters(r);
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->priority, Priority::kHigh);
  EXPECT_EQ(options->timeout, absl::Microseconds(2500));
  EXPECT_EQ(options->top_k, 2);
  (*r.mutable_parameters())["priority"].set_string_param("low");
  EXPECT_EQ(ParseRequestParameters(r)->priority, Priority::kLow);
  (*r.mutable_parameters())["priority"].set_uint64_param(7);
  EXPECT_EQ(ParseRequestParameters(r)->priority, Priority::kLow);
  (*r.mutable_parameters())["sequence_id"].set_int64_param(7);
  EXPECT_EQ(ParseRequestParameters(r).status().code(), absl::StatusCode::kInvalidArgument);
}

ClassifyResult Answer() {
  // Two images, three classes each: the core's dense answer.
  ClassifyResult a;
  a.model_name = "vit";
  a.model_version = 1;
  a.labels = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"c0", "c1", "c2"});
  a.classifications.resize(2);
  a.classifications[0].probabilities = {0.3f, 0.2f, 0.5f};
  a.classifications[1].probabilities = {0.04f, 0.9f, 0.06f};
  return a;
}

float RawFloat(const std::string& raw, size_t i) {
  float f;
  std::memcpy(&f, raw.data() + 4 * i, 4);
  return f;
}

TEST(KServeMapping, ClassifyOutputsRaw) {
  ModelInferRequest r = RawImages({"a", "b"});
  r.set_id("req-1");
  (*r.mutable_parameters())["top_k"].set_int64_param(2);
  VisionRequest mapped;
  auto plan = MapClassifyRequest(r, Classifier(), kMaxImages, &mapped);
  ASSERT_TRUE(plan.ok());
  ModelInferResponse out;
  ASSERT_TRUE(FillClassifyResponse(*plan, r, Answer(), &out).ok());
  EXPECT_EQ(out.model_name(), "vit");
  EXPECT_EQ(out.model_version(), "1");
  EXPECT_EQ(out.id(), "req-1");
  ASSERT_EQ(out.outputs_size(), 4);
  ASSERT_EQ(out.raw_output_contents_size(), 4);
  // probabilities FP32 [2, 3], scattered by class id.
  EXPECT_EQ(out.outputs(0).name(), "probabilities");
  EXPECT_EQ(out.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(out.outputs(0).shape().begin(), out.outputs(0).shape().end()),
            (std::vector<int64_t>{2, 3}));
  const std::string& p = out.raw_output_contents(0);
  ASSERT_EQ(p.size(), 24u);
  EXPECT_FLOAT_EQ(RawFloat(p, 0), 0.3f);
  EXPECT_FLOAT_EQ(RawFloat(p, 2), 0.5f);
  EXPECT_FLOAT_EQ(RawFloat(p, 4), 0.9f);
  // top_classes INT64 [2, 2].
  EXPECT_EQ(out.outputs(1).datatype(), "INT64");
  const std::string& ids = out.raw_output_contents(1);
  ASSERT_EQ(ids.size(), 32u);
  int64_t first;
  std::memcpy(&first, ids.data(), 8);
  EXPECT_EQ(first, 2);
  // top_labels BYTES [2, 2], length-prefixed.
  auto labels = SplitRawBytes(out.raw_output_contents(2), 4, "labels");
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ((*labels)[0], "c2");
  EXPECT_EQ((*labels)[2], "c1");
  EXPECT_FLOAT_EQ(RawFloat(out.raw_output_contents(3), 1), 0.3f);
}

TEST(KServeMapping, ClassifyOutputsTypedAndClassification) {
  ModelInferRequest r;
  r.set_model_name("vit");
  auto* t = AddInput(&r, "image", "BYTES", {2});
  t->mutable_contents()->add_bytes_contents("a");
  t->mutable_contents()->add_bytes_contents("b");
  auto* o = r.add_outputs();
  o->set_name("probabilities");
  (*o->mutable_parameters())["classification"].set_int64_param(5);  // capped at 3 classes
  r.add_outputs()->set_name("top_probabilities");
  VisionRequest mapped;
  auto plan = MapClassifyRequest(r, Classifier(), kMaxImages, &mapped);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ModelInferResponse out;
  ASSERT_TRUE(FillClassifyResponse(*plan, r, Answer(), &out).ok());
  EXPECT_EQ(out.raw_output_contents_size(), 0);
  ASSERT_EQ(out.outputs_size(), 2);
  EXPECT_EQ(out.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(out.outputs(0).shape(1), 3);
  ASSERT_EQ(out.outputs(0).contents().bytes_contents_size(), 6);
  EXPECT_EQ(out.outputs(0).contents().bytes_contents(0), "0.500000:2:c2");
  EXPECT_EQ(out.outputs(0).contents().bytes_contents(3), "0.900000:1:c1");
  EXPECT_EQ(out.outputs(1).contents().fp32_contents_size(), 6);  // top_k 5, capped at 3
}

TEST(KServeMapping, ClassificationString) {
  EXPECT_EQ(ClassificationString(0.25f, 7, "seven"), "0.250000:7:seven");
  EXPECT_EQ(ClassificationString(1.0f, 0, ""), "1.000000:0");
}

TEST(KServeMapping, SegmentMaskAndLabels) {
  ModelInferRequest r;
  r.set_model_name("seg");
  AddInput(&r, "pixels", "UINT8", {2, 1, 2, 1});
  r.add_raw_input_contents(std::string(4, '\0'));
  r.add_outputs()->set_name("mask");
  r.add_outputs()->set_name("labels");
  VisionRequest mapped;
  auto plan = MapSegmentRequest(r, Segmenter(), kMaxImages, &mapped);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(mapped.images.size(), 2u);
  SegmentResult answer;
  answer.labels = std::make_shared<const std::vector<std::string>>(std::vector<std::string>{"background", "digit"});
  for (int i = 0; i < 2; ++i) {
    model::Segmentation m;
    m.width = 2;
    m.height = 1;
    m.class_map = i == 0 ? std::vector<int32_t>{0, 1} : std::vector<int32_t>{1, 1};
    answer.masks.push_back(std::move(m));
  }
  ModelInferResponse out;
  ASSERT_TRUE(FillSegmentResponse(*plan, r, answer, &out).ok());
  ASSERT_EQ(out.outputs_size(), 2);
  EXPECT_EQ(out.outputs(0).datatype(), "INT32");
  EXPECT_EQ(std::vector<int64_t>(out.outputs(0).shape().begin(), out.outputs(0).shape().end()),
            (std::vector<int64_t>{2, 1, 2}));
  const std::string& mask = out.raw_output_contents(0);
  ASSERT_EQ(mask.size(), 16u);
  int32_t second;
  std::memcpy(&second, mask.data() + 4, 4);
  EXPECT_EQ(second, 1);
  auto labels = SplitRawBytes(out.raw_output_contents(1), 2, "labels");
  ASSERT_TRUE(labels.ok());
  EXPECT_EQ((*labels)[1], "digit");

  // Masks of different sizes cannot share one tensor.
  answer.masks[1].width = 1;
  answer.masks[1].height = 2;
  ModelInferResponse differ;
  auto s = FillSegmentResponse(*plan, r, answer, &differ);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("differ in size"), absl::string_view::npos) << s;

  // top_k and classification belong to classifiers.
  (*r.mutable_parameters())["top_k"].set_int64_param(1);
  EXPECT_EQ(MapSegmentRequest(r, Segmenter(), kMaxImages, &mapped).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(KServeMapping, ModelMetadataAndVersions) {
  inference::ModelMetadataResponse m;
  FillModelMetadata(Classifier(10), &m);
  EXPECT_EQ(m.name(), "vit");
  ASSERT_EQ(m.versions_size(), 1);
  EXPECT_EQ(m.versions(0), "1");
  EXPECT_EQ(m.platform(), kPlatform);
  // Exactly one input, the configured form (image by default): a client that fills every
  // input listed sends one.
  ASSERT_EQ(m.inputs_size(), 1);
  EXPECT_EQ(m.inputs(0).name(), "image");
  EXPECT_EQ(m.inputs(0).datatype(), "BYTES");
  EXPECT_EQ(m.inputs(0).shape_size(), 1);
  ASSERT_EQ(m.outputs_size(), 4);
  EXPECT_EQ(m.outputs(0).shape(1), 10);
  inference::ModelMetadataResponse seg;
  FillModelMetadata(Segmenter(), &seg);
  ASSERT_EQ(seg.inputs_size(), 1);
  EXPECT_EQ(seg.outputs(0).name(), "mask");
  EXPECT_EQ(seg.outputs(1).shape(0), 2);
}

std::vector<int64_t> Shape(const inference::ModelMetadataResponse::TensorMetadata& t) {
  return std::vector<int64_t>(t.shape().begin(), t.shape().end());
}

TEST(KServeMapping, MetadataListsTheConfiguredInputForm) {
  ModelSnapshot vit = Classifier(10);
  vit.description->image_size = 32;
  inference::ModelMetadataResponse m;
  vit.input_form = InputForm::kPixels;
  FillModelMetadata(vit, &m);
  ASSERT_EQ(m.inputs_size(), 1);
  EXPECT_EQ(m.inputs(0).name(), "pixels");
  EXPECT_EQ(m.inputs(0).datatype(), "UINT8");
  EXPECT_EQ(Shape(m.inputs(0)), (std::vector<int64_t>{-1, -1, -1, -1}));

  m.Clear();
  vit.input_form = InputForm::kTensor;
  FillModelMetadata(vit, &m);
  ASSERT_EQ(m.inputs_size(), 1);
  EXPECT_EQ(m.inputs(0).name(), "tensor");
  EXPECT_EQ(m.inputs(0).datatype(), "FP32");
  EXPECT_EQ(Shape(m.inputs(0)), (std::vector<int64_t>{-1, 3, 32, 32}));

  // A segmenter takes any size; a model still loading has no known size.
  ModelSnapshot seg = Segmenter();
  seg.description->image_size = 48;
  seg.input_form = InputForm::kTensor;
  m.Clear();
  FillModelMetadata(seg, &m);
  ASSERT_EQ(m.inputs_size(), 1);
  EXPECT_EQ(Shape(m.inputs(0)), (std::vector<int64_t>{-1, 3, -1, -1}));
  vit.description.reset();
  m.Clear();
  FillModelMetadata(vit, &m);
  ASSERT_EQ(m.inputs_size(), 1);
  EXPECT_EQ(Shape(m.inputs(0)), (std::vector<int64_t>{-1, 3, -1, -1}));
}

ModelSnapshot Classifier32() {
  ModelSnapshot s = Classifier(10);
  s.description->image_size = 4;  // small tensors below: 3 x 4 x 4
  return s;
}

std::string Floats(const std::vector<float>& values) {
  std::string s(values.size() * sizeof(float), '\0');
  std::memcpy(s.data(), values.data(), s.size());
  return s;
}

ModelInferRequest RawTensor(const std::string& datatype, std::vector<int64_t> shape, std::string bytes) {
  ModelInferRequest r;
  r.set_model_name("vit");
  AddInput(&r, "tensor", datatype, std::move(shape));
  r.add_raw_input_contents(std::move(bytes));
  return r;
}

absl::Status MapTensorRequest(const ModelInferRequest& r, VisionRequest* out = nullptr) {
  VisionRequest unused;
  return MapClassifyRequest(r, Classifier32(), kMaxImages, out ? out : &unused).status();
}

TEST(KServeMapping, TensorRawAndTypedGiveTheSameViews) {
  std::vector<float> values(2 * 3 * 4 * 4);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) / 10.0f - 1.0f;
  ModelInferRequest raw = RawTensor("FP32", {2, 3, 4, 4}, Floats(values));
  VisionRequest from_raw;
  ASSERT_TRUE(MapTensorRequest(raw, &from_raw).ok()) << MapTensorRequest(raw);
  ASSERT_EQ(from_raw.images.size(), 2u);
  EXPECT_EQ(from_raw.images[0].kind, ImageInput::Kind::kTensor);
  EXPECT_EQ(from_raw.images[0].width, 4);
  EXPECT_EQ(from_raw.images[0].height, 4);
  EXPECT_EQ(from_raw.images[0].tensor_type, model::PixelTensor::Type::kFloat32);
  // Views into the request: the second image starts 48 floats in.
  EXPECT_EQ(from_raw.images[1].tensor.data(), raw.raw_input_contents(0).data() + 48 * 4);
  EXPECT_EQ(from_raw.images[1].tensor.size(), 48u * 4);

  ModelInferRequest typed;
  typed.set_model_name("vit");
  auto* t = AddInput(&typed, "tensor", "FP32", {2, 3, 4, 4});
  for (float v : values) t->mutable_contents()->add_fp32_contents(v);
  VisionRequest from_typed;
  ASSERT_TRUE(MapTensorRequest(typed, &from_typed).ok()) << MapTensorRequest(typed);
  ASSERT_EQ(from_typed.images.size(), 2u);
  EXPECT_EQ(from_typed.images[1].tensor, from_raw.images[1].tensor);

  // FP16 and BF16 by name, raw only.
  EXPECT_TRUE(MapTensorRequest(RawTensor("FP16", {1, 3, 4, 4}, std::string(96, '\0'))).ok());
  VisionRequest bf16;
  ASSERT_TRUE(MapTensorRequest(RawTensor("BF16", {1, 3, 4, 4}, std::string(96, '\0')), &bf16).ok());
  EXPECT_EQ(bf16.images[0].tensor_type, model::PixelTensor::Type::kBFloat16);
  typed.mutable_inputs(0)->set_datatype("FP16");
  EXPECT_NE(MapTensorRequest(typed).message().find("raw_input_contents"), std::string::npos);
}

TEST(KServeMapping, TensorShapesDatatypesAndSizesAreChecked) {
  const std::string one = std::string(48 * 4, '\0');
  auto error = [](const ModelInferRequest& r) { return std::string(MapTensorRequest(r).message()); };
  EXPECT_TRUE(MapTensorRequest(RawTensor("FP32", {1, 3, 4, 4}, one)).ok());
  // Not the model's size: the message names the shape the model takes.
  ModelInferRequest wrong_size = RawTensor("FP32", {1, 3, 2, 8}, one);
  EXPECT_EQ(MapTensorRequest(wrong_size).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(error(wrong_size).find("input \"tensor\": shape [1, 3, 2, 8] is not [-1, 3, 4, 4]"), std::string::npos)
      << error(wrong_size);
  // NHWC, rank 3, empty, too many images.
  EXPECT_NE(error(RawTensor("FP32", {1, 4, 4, 3}, one)).find("is not [-1, 3, 4, 4]"), std::string::npos);
  EXPECT_FALSE(MapTensorRequest(RawTensor("FP32", {3, 4, 4}, one)).ok());
  EXPECT_NE(error(RawTensor("FP32", {0, 3, 4, 4}, "")).find("no images"), std::string::npos);
  EXPECT_NE(error(RawTensor("FP32", {65, 3, 4, 4}, "")).find("limit of 64"), std::string::npos);
  // Bytes that do not match the shape and datatype.
  EXPECT_NE(error(RawTensor("FP32", {1, 3, 4, 4}, one + "x")).find("needs 192 bytes"), std::string::npos);
  EXPECT_NE(error(RawTensor("FP16", {1, 3, 4, 4}, one)).find("needs 96 bytes"), std::string::npos);
  // Datatypes the form does not take.
  EXPECT_NE(error(RawTensor("FP64", {1, 3, 4, 4}, one + one)).find("not FP32, FP16 or BF16"), std::string::npos);
  EXPECT_NE(error(RawTensor("UINT8", {1, 3, 4, 4}, std::string(48, '\0'))).find("not FP32"), std::string::npos);
  // A segmenter takes any size (its images of one size are one tensor anyway), within INT32.
  VisionRequest seg;
  ModelInferRequest wide = RawTensor("FP32", {1, 3, 2, 8}, one);
  ASSERT_TRUE(MapSegmentRequest(wide, Segmenter(), kMaxImages, &seg).ok());
  EXPECT_EQ(seg.images[0].width, 8);
  EXPECT_EQ(seg.images[0].height, 2);
  const int64_t big = int64_t{1} << 40;
  EXPECT_EQ(MapSegmentRequest(RawTensor("FP32", {1, 3, big, big}, one), Segmenter(), kMaxImages, &seg).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Element count beyond INT64_MAX / 4 bytes: refused without overflow.
  const int64_t huge = int64_t{1} << 30;
  EXPECT_EQ(MapSegmentRequest(RawTensor("FP32", {1, 3, huge, huge}, one), Segmenter(), kMaxImages, &seg).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KServeMapping, NonFiniteTensorElementsAreRefusedByIndex) {
  std::vector<float> values(48, 0.5f);
  values[17] = std::numeric_limits<float>::quiet_NaN();
  std::string message(MapTensorRequest(RawTensor("FP32", {1, 3, 4, 4}, Floats(values))).message());
  EXPECT_NE(message.find("input \"tensor\": element 17 is not finite"), std::string::npos) << message;
  values[17] = 0;
  values[40] = -std::numeric_limits<float>::infinity();
  message = std::string(MapTensorRequest(RawTensor("FP32", {1, 3, 4, 4}, Floats(values))).message());
  EXPECT_NE(message.find("element 40 is not finite"), std::string::npos) << message;
  // FP16 infinity is 0x7C00; BF16 NaN 0x7FC0 (little-endian byte pairs).
  std::string fp16(96, '\0');
  fp16[2 * 5] = '\x00';
  fp16[2 * 5 + 1] = '\x7c';
  message = std::string(MapTensorRequest(RawTensor("FP16", {1, 3, 4, 4}, fp16)).message());
  EXPECT_NE(message.find("element 5 is not finite"), std::string::npos) << message;
  std::string bf16(96, '\0');
  bf16[2 * 9] = '\xc0';
  bf16[2 * 9 + 1] = '\x7f';
  message = std::string(MapTensorRequest(RawTensor("BF16", {1, 3, 4, 4}, bf16)).message());
  EXPECT_NE(message.find("element 9 is not finite"), std::string::npos) << message;
  // The largest finite FP16 (0x7BFF) passes.
  fp16[2 * 5] = '\xff';
  fp16[2 * 5 + 1] = '\x7b';
  EXPECT_TRUE(MapTensorRequest(RawTensor("FP16", {1, 3, 4, 4}, fp16)).ok());
}

TEST(KServeMapping, EveryFormIsAcceptedWhateverTheConfiguredOne) {
  ModelSnapshot vit = Classifier32();
  for (InputForm form : {InputForm::kImage, InputForm::kPixels, InputForm::kTensor}) {
    vit.input_form = form;
    VisionRequest out;
    EXPECT_TRUE(MapClassifyRequest(RawImages({"png"}), vit, kMaxImages, &out).ok());
    EXPECT_TRUE(MapClassifyRequest(RawTensor("FP32", {1, 3, 4, 4}, std::string(192, '\0')), vit, kMaxImages, &out).ok());
  }
  // Two inputs (a client filling image and pixels): the message names the accepted ones and
  // the one the metadata lists.
  vit.input_form = InputForm::kTensor;
  ModelInferRequest two = RawImages({"a"});
  AddInput(&two, "pixels", "UINT8", {1, 1, 1, 1});
  two.add_raw_input_contents(std::string(1, '\0'));
  VisionRequest out;
  absl::Status status = MapClassifyRequest(two, vit, kMaxImages, &out).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("exactly one input"), std::string::npos) << status;
  EXPECT_NE(status.message().find("tensor (FP32 [-1, 3, 4, 4])"), std::string::npos) << status;
  EXPECT_NE(status.message().find("metadata lists tensor"), std::string::npos) << status;
}

TEST(KServeJson, ATensorAsJsonNumbersMapsToFloats) {
  // 48 numbers, one beyond float32's range (it becomes infinity, then a refusal naming it).
  std::string data;
  for (int i = 0; i < 48; ++i) data += (i ? "," : "") + std::to_string(i - 24) + ".25";
  const auto body = [](const std::string& values) {
    return R"({"inputs": [{"name": "tensor", "datatype": "FP32", "shape": [1, 3, 4, 4], "data": [)" + values + "]}]}";
  };
  auto r = ParseInferRequest(body(data), std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  r->set_model_name("vit");
  VisionRequest mapped;
  ASSERT_TRUE(MapClassifyRequest(*r, Classifier32(), kMaxImages, &mapped).ok());
  ASSERT_EQ(mapped.images.size(), 1u);
  float third;
  std::memcpy(&third, mapped.images[0].tensor.data() + 2 * sizeof(float), sizeof third);
  EXPECT_EQ(third, -22.25f);  // "-22" + ".25"
  auto far = ParseInferRequest(body("1e39," + data.substr(data.find(',') + 1)), std::nullopt);
  ASSERT_TRUE(far.ok()) << far.status();
  far->set_model_name("vit");
  absl::Status refused = MapClassifyRequest(*far, Classifier32(), kMaxImages, &mapped).status();
  EXPECT_NE(refused.message().find("element 0 is not finite"), std::string::npos) << refused;
  // FP16 has no JSON form.
  auto fp16 = ParseInferRequest(R"({"inputs": [{"name": "tensor", "datatype": "FP16", "shape": [1], "data": [1]}]})",
                                std::nullopt);
  EXPECT_NE(fp16.status().message().find("send it as binary data"), std::string::npos) << fp16.status();
}

TEST(KServeJson, JsonAndBinaryInputsBecomeRawContents) {
  const std::string json = R"({"id": "7", "parameters": {"top_k": 2, "binary_data_output": true},
    "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 1, 2, 1], "data": [[[[0], [255]]]]}],
    "outputs": [{"name": "top_labels", "parameters": {"binary_data": false}}]})";
  auto r = ParseInferRequest(json, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id(), "7");
  EXPECT_EQ(r->parameters().at("top_k").int64_param(), 2);
  ASSERT_EQ(r->raw_input_contents_size(), 1);
  EXPECT_EQ(r->raw_input_contents(0), std::string("\x00\xff", 2));
  EXPECT_EQ(r->outputs(0).parameters().at("binary_data").bool_param(), false);

  const std::string file = "\x89PNG....";
  const std::string element = Le32(static_cast<uint32_t>(file.size())) + file;
  const std::string header = R"({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
    "parameters": {"binary_data_size": )" + std::to_string(element.size()) + "}}]}";
  auto b = ParseInferRequest(header + element, header.size());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->raw_input_contents(0), element);
  EXPECT_EQ(b->inputs(0).parameters().count("binary_data_size"), 0u);
  VisionRequest mapped;
  b->set_model_name("vit");
  ASSERT_TRUE(MapClassifyRequest(*b, Classifier(), kMaxImages, &mapped).ok());
  EXPECT_EQ(mapped.images[0].encoded, file);

  // Binary sizes that do not add up, bad JSON, data of the wrong type or count.
  EXPECT_FALSE(ParseInferRequest(header + element + "x", header.size()).ok());
  EXPECT_FALSE(ParseInferRequest(header + element.substr(1), header.size()).ok());
  EXPECT_FALSE(ParseInferRequest(header, header.size() + 1).ok());
  EXPECT_FALSE(ParseInferRequest("{", std::nullopt).ok());
  EXPECT_FALSE(ParseInferRequest(R"({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1],
    "data": [256]}]})", std::nullopt).ok());
  EXPECT_FALSE(ParseInferRequest(R"({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [2],
    "data": [1]}]})", std::nullopt).ok());
  EXPECT_FALSE(ParseInferRequest(R"({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [-1],
    "data": []}]})", std::nullopt).ok());
  EXPECT_FALSE(ParseInferRequest(R"({"inputs": [{"name": "x", "datatype": "FP16", "shape": [1],
    "data": [1.0]}]})", std::nullopt).ok());
  EXPECT_FALSE(ParseInferRequest(R"({"inputs": {}})", std::nullopt).ok());
  // Very deep nesting is refused, not recursed into.
  EXPECT_FALSE(ParseInferRequest(R"({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1], "data": )" +
                                     std::string(100, '[') + "1" + std::string(100, ']') + "}]}",
                                 std::nullopt)
                   .ok());
}

// One input's body with `data` (JSON text) and the datatype before or after it.
std::string InputBody(const std::string& datatype, const std::string& shape, const std::string& data,
                      bool datatype_first = true) {
  const std::string type = "\"datatype\": \"" + datatype + "\"";
  return R"({"inputs": [{"name": "x", )" + (datatype_first ? type + ", " : "") + "\"shape\": " + shape +
         ", \"data\": " + data + (datatype_first ? "" : ", " + type) + "}]}";
}

// The raw contents of `body`'s one input, or its error.
std::string RawOf(const std::string& body) {
  auto r = ParseInferRequest(body, std::nullopt);
  if (!r.ok()) return "error: " + std::string(r.status().message());
  EXPECT_EQ(r->raw_input_contents_size(), 1);
  return r->raw_input_contents_size() == 1 ? r->raw_input_contents(0) : "";
}

template <typename T>
std::string RawLe(const std::vector<T>& values) {
  std::string raw(values.size() * sizeof(T), '\0');
  std::memcpy(raw.data(), values.data(), raw.size());  // little-endian, as x86 and ARM Linux are
  return raw;
}

TEST(KServeJson, LargeDataArraysGoStraightToRawContents) {
  // 1 MiB of small integers: the elements as a DOM would hold them (nlohmann's own parse), each
  // datatype's raw form of those, against what ParseInferRequest made of the body directly.
  std::string data = "[";
  size_t n = 0;
  for (; data.size() < (1u << 20); ++n) {
    if (n > 0) data += ",";
    data += std::to_string((n * 37) % 256);
  }
  data += "]";
  const auto dom = nlohmann::json::parse(data);
  ASSERT_EQ(dom.size(), n);
  std::vector<uint8_t> u8;
  std::vector<int64_t> i64;
  std::vector<float> f32;
  for (const auto& v : dom) {
    u8.push_back(v.get<uint8_t>());
    i64.push_back(v.get<int64_t>());
    f32.push_back(v.get<float>());
  }
  const std::string shape = "[" + std::to_string(n) + "]";
  for (bool datatype_first : {true, false}) {  // encoded at once, or kept and encoded after
    EXPECT_EQ(RawOf(InputBody("UINT8", shape, data, datatype_first)), RawLe(u8)) << datatype_first;
    EXPECT_EQ(RawOf(InputBody("INT64", shape, data, datatype_first)), RawLe(i64)) << datatype_first;
    EXPECT_EQ(RawOf(InputBody("FP32", shape, data, datatype_first)), RawLe(f32)) << datatype_first;
  }

  // Nested as a tensor [N, H, W, C] gives what flat data does.
  std::string nested = "[";
  std::string flat = "[";
  int i = 0;
  for (int b = 0; b < 2; ++b) {
    nested += b == 0 ? "[" : ",[";
    for (int h = 0; h < 4; ++h) {
      nested += h == 0 ? "[" : ",[";
      for (int w = 0; w < 5; ++w) {
        nested += w == 0 ? "[" : ",[";
        for (int c = 0; c < 3; ++c, ++i) {
          nested += (c == 0 ? "" : ",") + std::to_string(i * 2);
          flat += (i == 0 ? "" : ",") + std::to_string(i * 2);
        }
        nested += "]";
      }
      nested += "]";
    }
    nested += "]";
  }
  nested += "]";
  flat += "]";
  ASSERT_TRUE(nlohmann::json::accept(nested)) << nested;
  ASSERT_EQ(nlohmann::json::parse(nested)[1][3][4][2], 238);
  const std::string raw = RawOf(InputBody("UINT8", "[2, 4, 5, 3]", nested));
  EXPECT_EQ(raw.size(), 120u);
  EXPECT_EQ(raw, RawOf(InputBody("UINT8", "[120]", flat)));
  EXPECT_EQ(raw, RawOf(InputBody("UINT8", "[2, 4, 5, 3]", nested, /*datatype_first=*/false)));
  EXPECT_EQ(static_cast<uint8_t>(raw[119]), 238);
}

TEST(KServeJson, DataOfEveryDatatypeAndItsProblemsInOrder) {
  for (bool first : {true, false}) {
    SCOPED_TRACE(first ? "datatype before data" : "datatype after data");
    EXPECT_EQ(RawOf(InputBody("BOOL", "[2]", "[true, false]", first)), std::string("\x01\x00", 2));
    EXPECT_EQ(RawOf(InputBody("UINT8", "[1]", "5", first)), "\x05");         // a scalar is one element
    EXPECT_EQ(RawOf(InputBody("UINT8", "[]", "[[7]]", first)), "\x07");      // rank 0: one element
    EXPECT_EQ(RawOf(InputBody("UINT8", "[1]", "[-0]", first)), std::string(1, '\0'));
    EXPECT_EQ(RawOf(InputBody("INT8", "[2]", "[-128, 127]", first)), "\x80\x7f");
    EXPECT_EQ(RawOf(InputBody("UINT64", "[1]", "[18446744073709551615]", first)), std::string(8, '\xff'));
    EXPECT_EQ(RawOf(InputBody("INT64", "[5]", "[-9223372036854775808, 9223372036854775807, -1, -0, 256]", first)),
              RawLe(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
                                         -1, 0, 256}));
    EXPECT_EQ(RawOf(InputBody("INT16", "[2]", "[-2, 258]", first)), "\xfe\xff\x02\x01");
    EXPECT_EQ(RawOf(InputBody("FP64", "[2]", "[1, -0.5]", first)), RawLe(std::vector<double>{1, -0.5}));
    EXPECT_EQ(RawOf(InputBody("BYTES", "[3]", R"(["a\"b", "\u00e9\n", ""])", first)),
              Le32(3) + "a\"b" + Le32(3) + "\xc3\xa9\n" + Le32(0));
    const std::string x = "error: input \"x\": ";
    EXPECT_EQ(RawOf(InputBody("UINT8", "[3]", "[1, 300, 2]", first)), x + "data element 1 is out of the datatype's range");
    EXPECT_EQ(RawOf(InputBody("INT8", "[1]", "[128]", first)), x + "data element 0 is out of the datatype's range");
    EXPECT_EQ(RawOf(InputBody("INT64", "[1]", "[9223372036854775808]", first)),
              x + "data element 0 is out of the datatype's range");
    EXPECT_EQ(RawOf(InputBody("UINT8", "[2]", "[1, -1]", first)), x + "data element 1 is not a non-negative integer");
    EXPECT_EQ(RawOf(InputBody("INT32", "[1]", "[1.5]", first)), x + "data element 0 is not an integer");
    EXPECT_EQ(RawOf(InputBody("FP32", "[1]", "[\"1\"]", first)), x + "data element 0 is not a number");
    EXPECT_EQ(RawOf(InputBody("BOOL", "[1]", "[1]", first)), x + "data element 0 is not a boolean");
    EXPECT_EQ(RawOf(InputBody("BYTES", "[1]", "[null]", first)), x + "data element 0 is not a string");
    // An object is one element, whatever it holds.
    EXPECT_EQ(RawOf(InputBody("UINT8", "[2]", R"([{"a": [1, 2]}, 3])", first)),
              x + "data element 0 is not a non-negative integer");
    // The DOM's walk found nesting first, then the count, then a bad element.
    EXPECT_EQ(RawOf(InputBody("UINT8", "[2]", "[1, 300, 2]", first)), x + "shape has 2 elements; \"data\" has 3");
    const std::string deep17 = std::string(17, '[') + "1, 300" + std::string(17, ']');
    EXPECT_EQ(RawOf(InputBody("UINT8", "[5]", deep17, first)), x + "\"data\" nests deeper than 16");
    EXPECT_EQ(RawOf(InputBody("UINT8", "[1]", std::string(16, '[') + "9" + std::string(16, ']'), first)), "\x09");
    EXPECT_EQ(RawOf(InputBody("FP16", "[1]", "[1.0]", first)),
              x + "datatype FP16 cannot be JSON data: send it as binary data");
    EXPECT_EQ(RawOf(InputBody("INT3", "[1]", "[1]", first)), x + "datatype \"INT3\" is not known");
  }
  // A repeated "data" key: the last is the input's, as in a DOM.
  EXPECT_EQ(RawOf(R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [1, 2], "data": [3]}]})"),
            "\x03");
  // A repeated "datatype" after "data": the same one is harmless, another is refused (the
  // elements were encoded by the first).
  EXPECT_EQ(RawOf(R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [4], "datatype": "UINT8"}]})"),
            "\x04");
  EXPECT_EQ(RawOf(R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [4], "datatype": "INT64"}]})"),
            "error: input \"x\": \"data\" was read as \"UINT8\"; a later \"datatype\" says \"INT64\"");
  // Two inputs, each its own data.
  auto two = ParseInferRequest(R"({"inputs": [{"name": "a", "datatype": "UINT8", "shape": [1], "data": [1]},
      {"data": [2, 3], "name": "b", "shape": [2], "datatype": "INT8"}]})", std::nullopt);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->raw_input_contents(0), "\x01");
  EXPECT_EQ(two->raw_input_contents(1), "\x02\x03");
}

TEST(KServeJson, HostileBodiesAreRefusedWithinBounds) {
  auto error = [](const std::string& body) {
    auto r = ParseInferRequest(body, std::nullopt);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  };
  EXPECT_EQ(error(std::string(1 << 20, '[')), "the JSON body nests deeper than 32 levels (at byte offset 32)");
  EXPECT_EQ(error("{not json"), "the request body is not valid JSON (at byte offset 2)");
  // Nodes beyond the DOM's budget, besides a valid input.
  std::string junk = R"({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [1]}], "junk": [)";
  for (int i = 0; i < (1 << 20); ++i) junk += i == 0 ? "{}" : ",{}";
  EXPECT_NE(error(junk + "]}").find("bytes of memory to parse"), std::string::npos);
  // Shapes that claim more than the body holds reserve no more than it could: each input's
  // buffer is charged, and thousands of them are refused, not allocated.
  std::string lying = R"({"inputs": [)";
  for (int i = 0; i < 2000; ++i) {
    lying += std::string(i == 0 ? "" : ",") + R"({"name": "x", "datatype": "INT64", "shape": [1000000000], "data": [0]})";
  }
  EXPECT_NE(error(lying + "]}").find("bytes of memory to parse"), std::string::npos);
}

TEST(KServeJson, ResponsesInJsonAndBinary) {
  ModelInferRequest r = RawImages({"a", "b"});
  auto* o = r.add_outputs();
  o->set_name("probabilities");
  (*o->mutable_parameters())["binary_data"].set_bool_param(true);
  r.add_outputs()->set_name("top_labels");
  VisionRequest mapped;
  auto plan = MapClassifyRequest(r, Classifier(), kMaxImages, &mapped);
  ASSERT_TRUE(plan.ok());
  ModelInferResponse out;
  ASSERT_TRUE(FillClassifyResponse(*plan, r, Answer(), &out).ok());
  auto body = WriteInferResponse(r, out);
  ASSERT_TRUE(body.ok()) << body.status();
  ASSERT_TRUE(body->json_length.has_value());
  const auto header = nlohmann::json::parse(body->body.substr(0, *body->json_length));
  EXPECT_EQ(header["model_version"], "1");
  EXPECT_EQ(header["outputs"][0]["parameters"]["binary_data_size"], 24);
  EXPECT_EQ(header["outputs"][1]["data"], nlohmann::json({"c2", "c0", "c1", "c1", "c2", "c0"}));
  EXPECT_EQ(body->body.size() - *body->json_length, 24u);
  EXPECT_FLOAT_EQ(RawFloat(body->body.substr(*body->json_length), 2), 0.5f);

  ModelInferRequest plain = RawImages({"a", "b"});
  plain.add_outputs()->set_name("top_classes");
  (*plain.mutable_parameters())["top_k"].set_int64_param(1);
  plan = MapClassifyRequest(plain, Classifier(), kMaxImages, &mapped);
  ASSERT_TRUE(plan.ok());
  ModelInferResponse out2;
  ASSERT_TRUE(FillClassifyResponse(*plan, plain, Answer(), &out2).ok());
  auto json_body = WriteInferResponse(plain, out2);
  ASSERT_TRUE(json_body.ok());
  EXPECT_FALSE(json_body->json_length.has_value());
  const auto parsed = nlohmann::json::parse(json_body->body);
  EXPECT_EQ(parsed["outputs"][0]["data"], nlohmann::json({2, 1}));
  EXPECT_EQ(parsed["outputs"][0]["shape"], nlohmann::json({2, 1}));
}

// The model repository extension.

TEST(KServeRepository, OneRepositoryNamedEmpty) {
  EXPECT_TRUE(CheckRepositoryName("").ok());
  const absl::Status other = CheckRepositoryName("models");
  EXPECT_EQ(other.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(other.message().find("\"models\""), std::string::npos) << other;
}

TEST(KServeRepository, ParametersAreRefusedByNameExceptUnloadDependents) {
  google::protobuf::Map<std::string, inference::ModelRepositoryParameter> params;
  EXPECT_TRUE(CheckRepositoryParameters(params, false).ok());
  params["unload_dependents"].set_bool_param(true);
  EXPECT_TRUE(CheckRepositoryParameters(params, /*unload=*/true).ok());
  EXPECT_EQ(CheckRepositoryParameters(params, /*unload=*/false).code(), absl::StatusCode::kInvalidArgument);
  params["unload_dependents"].set_string_param("yes");
  EXPECT_EQ(CheckRepositoryParameters(params, true).code(), absl::StatusCode::kInvalidArgument);
  params.clear();
  for (const char* name : {"config", "file:1/model.safetensors", "priority"}) {
    google::protobuf::Map<std::string, inference::ModelRepositoryParameter> one;
    one[name].set_string_param("{}");
    for (bool unload : {false, true}) {
      const absl::Status s = CheckRepositoryParameters(one, unload);
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
      EXPECT_NE(s.message().find(absl::StrCat("\"", name, "\"")), std::string::npos) << s;
    }
  }
  // A hostile key is shown escaped and cut.
  google::protobuf::Map<std::string, inference::ModelRepositoryParameter> hostile;
  hostile[std::string(300, 'k') + "\n"].set_bool_param(true);
  const absl::Status s = CheckRepositoryParameters(hostile, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 200u) << s;
}

TEST(KServeRepository, IndexHasTritonsStatesAndVersionStrings) {
  std::vector<ModelSnapshot> versions(5);
  const ModelState states[] = {ModelState::kReady, ModelState::kLoading, ModelState::kUnloading, ModelState::kFailed,
                               ModelState::kUnavailable};
  for (int i = 0; i < 5; ++i) {
    versions[i].name = "m" + std::to_string(i);
    versions[i].version = i;  // m0 has no version
    versions[i].state = states[i];
  }
  versions[3].reason = "config.json: bad";
  inference::RepositoryIndexResponse index;
  FillRepositoryIndex(versions, &index);
  ASSERT_EQ(index.models_size(), 5);
  EXPECT_EQ(index.models(0).version(), "");
  EXPECT_EQ(index.models(2).version(), "2");
  const char* names[] = {"READY", "LOADING", "UNLOADING", "UNAVAILABLE", "UNAVAILABLE"};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(index.models(i).state(), names[i]) << i;
  EXPECT_EQ(index.models(3).reason(), "config.json: bad");

  const nlohmann::json body = nlohmann::json::parse(RepositoryIndexJson(index));
  ASSERT_TRUE(body.is_array());
  ASSERT_EQ(body.size(), 5u);
  EXPECT_EQ(body[0], nlohmann::json({{"name", "m0"}, {"state", "READY"}}));  // no version, no reason
  EXPECT_EQ(body[3], nlohmann::json({{"name", "m3"}, {"version", "3"}, {"state", "UNAVAILABLE"},
                                     {"reason", "config.json: bad"}}));
}

TEST(KServeRepository, RestBodies) {
  for (const char* empty : {"", "  \r\n", "{}"}) {
    auto index = ParseRepositoryIndexRequest(empty);
    ASSERT_TRUE(index.ok()) << index.status();
    EXPECT_FALSE(index->ready());
  }
  EXPECT_TRUE(ParseRepositoryIndexRequest(R"({"ready": true})")->ready());
  EXPECT_FALSE(ParseRepositoryIndexRequest(R"({"ready": "yes"})").ok());
  EXPECT_FALSE(ParseRepositoryIndexRequest("[]").ok());
  EXPECT_FALSE(ParseRepositoryIndexRequest("{").ok());

  google::protobuf::Map<std::string, inference::ModelRepositoryParameter> params;
  ASSERT_TRUE(ParseRepositoryParameters("", &params).ok());
  EXPECT_TRUE(params.empty());
  // tritonclient.http's unload body.
  ASSERT_TRUE(ParseRepositoryParameters(R"({"parameters": {"unload_dependents": false}})", &params).ok());
  ASSERT_EQ(params.count("unload_dependents"), 1u);
  EXPECT_EQ(params.at("unload_dependents").parameter_choice_case(), inference::ModelRepositoryParameter::kBoolParam);
  params.clear();
  ASSERT_TRUE(ParseRepositoryParameters(R"({"parameters": {"config": "{}", "n": -3}})", &params).ok());
  EXPECT_EQ(params.at("config").string_param(), "{}");
  EXPECT_EQ(params.at("n").int64_param(), -3);
  EXPECT_FALSE(ParseRepositoryParameters(R"({"parameters": {"x": 1.5}})", &params).ok());
  EXPECT_FALSE(ParseRepositoryParameters(R"({"parameters": {"x": 18446744073709551615}})", &params).ok());
  EXPECT_FALSE(ParseRepositoryParameters(R"({"parameters": []})", &params).ok());
  EXPECT_FALSE(ParseRepositoryParameters(std::string(100, '[') , &params).ok());
}

}  // namespace
}  // namespace elliptical::server::kserve
