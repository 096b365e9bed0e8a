#include "server/input/image_decoder.h"

#include <gtest/gtest.h>

#include "tests/support/fixtures.h"

namespace elliptical::server {
namespace {

using elliptical::testing::FixturesDir;
using elliptical::testing::ReadFileBytes;

TEST(DecodeImage, PngGivesItsPixels) {
  auto image = DecodeImage(ReadFileBytes(FixturesDir() + "/images/wide_80x60.png"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 80);
  EXPECT_EQ(image->height, 60);
  EXPECT_EQ(image->pixels.size(), 80u * 60 * 3);
}

TEST(DecodeImage, GreyPngBecomesRgb) {
  auto image = DecodeImage(ReadFileBytes(FixturesDir() + "/images/grey.png"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->pixels.size(), 32u * 32 * 3);
  for (size_t i = 0; i < image->pixels.size(); i += 3) {
    ASSERT_EQ(image->pixels[i], image->pixels[i + 1]);
    ASSERT_EQ(image->pixels[i], image->pixels[i + 2]);
  }
}

TEST(DecodeImage, Jpeg) {
  auto image = DecodeImage(ReadFileBytes(FixturesDir() + "/images/photo.jpg"), {});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 48);
  EXPECT_EQ(image->height, 48);
}

TEST(DecodeImage, TextIsRefusedWithAReason) {
  auto image = DecodeImage(ReadFileBytes(FixturesDir() + "/images/not_an_image.png"), {});
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(image.status().message().find("not a PNG or JPEG"), std::string::npos);
}

TEST(DecodeImage, TruncatedPngIsRefused) {
  std::string png = ReadFileBytes(FixturesDir() + "/images/pattern_0.png");
  auto image = DecodeImage(png.substr(0, png.size() / 2), {});
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DecodeImage, TooManyPixelsIsRefusedBeforeDecoding) {
  ImageLimits limits;
  limits.max_pixels = 1000;
  auto image = DecodeImage(ReadFileBytes(FixturesDir() + "/images/wide_80x60.png"), limits);
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("4800 pixels"), std::string::npos) << image.status();
}

TEST(DecodeImage, EmptyBytes) {
  EXPECT_EQ(DecodeImage("", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImageFromPixels, ConvertsGreyAndRgbaToRgb) {
  auto grey = ImageFromPixels(2, 1, 1, std::string("\x10\x20", 2), {});
  ASSERT_TRUE(grey.ok());
  EXPECT_EQ(grey->pixels, (std::vector<uint8_t>{0x10, 0x10, 0x10, 0x20, 0x20, 0x20}));
  auto rgba = ImageFromPixels(1, 1, 4, std::string("\x01\x02\x03\x04", 4), {});
  ASSERT_TRUE(rgba.ok());
  EXPECT_EQ(rgba->pixels, (std::vector<uint8_t>{1, 2, 3}));
}

TEST(ImageFromPixels, WrongByteCountNamesBoth) {
  auto image = ImageFromPixels(2, 2, 3, std::string(11, 'x'), {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("needs 12 bytes, got 11"), std::string::npos);
  EXPECT_FALSE(ImageFromPixels(2, 2, 2, std::string(8, 'x'), {}).ok());
  EXPECT_FALSE(ImageFromPixels(0, 2, 3, "", {}).ok());
}

// Sides whose product overflows 64 bits once wrapped to a small number and passed the limit.
TEST(ImageFromPixels, SidesWhoseProductOverflowsAreRefused) {
  for (auto [w, h] : {std::pair<int64_t, int64_t>{4294571377, 2863575501},
                      {4294967295, 4294967295}, {int64_t{1} << 32, int64_t{1} << 32}}) {
    auto image = ImageFromPixels(w, h, 3, std::string(1399, 'x'), {});
    ASSERT_FALSE(image.ok()) << w << "x" << h;
    EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(image.status().message().find("the limit is"), std::string::npos) << image.status();
  }
}

}  // namespace
}  // namespace elliptical::server
