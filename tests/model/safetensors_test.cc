#include "model/config/safetensors.h"

#include <cstring>

#include <gtest/gtest.h>

namespace elliptical::model {
namespace {

std::vector<uint8_t> File(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> bytes(8);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) bytes.push_back(static_cast<uint8_t>(i));
  return bytes;
}

TEST(Safetensors, ReadsEntriesAndMetadata) {
  auto file = SafetensorsFile::Parse(
      File(R"({"__metadata__":{"seed":"1"},"b":{"dtype":"BF16","shape":[3],"data_offsets":[8,14]},)"
           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
           14),
      "test");
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->entries().size(), 2u);
  const SafetensorsEntry& a = file->entries().at("a");
  EXPECT_EQ(a.dtype, SafetensorsDtype::kF32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(a.data.size(), 8u);
  EXPECT_EQ(a.data[0], 0);
  EXPECT_EQ(file->entries().at("b").data[0], 8);  // offsets are relative to the data section
  EXPECT_EQ(file->metadata().at("seed"), "1");
}

TEST(Safetensors, RejectsTruncatedHeader) {
  auto bytes = File(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  bytes.resize(20);
  auto file = SafetensorsFile::Parse(bytes, "weights.safetensors");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("weights.safetensors"), std::string::npos);
}

TEST(Safetensors, RejectsOffsetsOutsideTheData) {
  auto file = SafetensorsFile::Parse(
      File(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8), "x");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("tensor \"w\""), std::string::npos) << file.status();
}

TEST(Safetensors, RejectsSizeThatDoesNotMatchShape) {
  auto file = SafetensorsFile::Parse(
      File(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "x");
  ASSERT_FALSE(file.ok());
  EXPECT_NE(file.status().message().find("needs 12"), std::string::npos) << file.status();
}

// Found by tests/fuzz/safetensors_fuzz.cc (its regressions/safetensors/ keeps the inputs): a
// shape whose element count wraps around 2^64 matched an empty data range, and a dimension of
// 2^63 or more came through as a negative int64.
TEST(Safetensors, RejectsShapesBeyondSixtyFourBits) {
  auto wraps = SafetensorsFile::Parse(
      File(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0), "x");
  ASSERT_FALSE(wraps.ok());
  EXPECT_NE(wraps.status().message().find("more than 2^64 bytes"), std::string::npos) << wraps.status();
  auto negative = SafetensorsFile::Parse(
      File(R"({"w":{"dtype":"U8","shape":[9223372036854775808,0],"data_offsets":[0,0]}})", 0), "x");
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("[0, 2^63)"), std::string::npos) << negative.status();
  // An empty tensor stays valid whatever its other dimensions.
  auto empty = SafetensorsFile::Parse(
      File(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0), "x");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->entries().at("w").data.empty());
}

TEST(Safetensors, RejectsUnknownDtypeAndBadJson) {
  EXPECT_FALSE(SafetensorsFile::Parse(
                   File(R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1), "x")
                   .ok());
  EXPECT_FALSE(SafetensorsFile::Parse(File("{not json", 0), "x").ok());
  EXPECT_FALSE(SafetensorsFile::Parse({1, 2, 3}, "x").ok());
}

TEST(Safetensors, MissingFileIsNotFound) {
  EXPECT_EQ(SafetensorsFile::Open("/nonexistent/model.safetensors").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace elliptical::model
