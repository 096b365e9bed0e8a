#include "server/input/image_decoder.h"
#include "server/input/stb_guards.h"

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

// Found by tests/fuzz/image_decoder_fuzz.cc (regressions/image_decoder/ keeps the input): a DHT
// segment whose code counts add up to more than 256 overflowed stb_image's Huffman tables.
TEST(DecodeImage, JpegWithAnOversizedHuffmanTableIsRefused) {
  std::string jpeg = ReadFileBytes(FixturesDir() + "/images/photo.jpg");
  ASSERT_TRUE(DecodeImage(jpeg, {}).ok());
  // After the start-of-image marker: a DHT segment with one AC table of 16 x 255 codes.
  std::string dht = "\xff\xc4";
  const int length = 2 + 17 + 16 * 255;
  dht += static_cast<char>(length >> 8);
  dht += static_cast<char>(length & 0xFF);
  dht += '\x10';
  dht += std::string(16, '\xff');
  dht += std::string(16 * 255, '\x01');
  auto image = DecodeImage(jpeg.substr(0, 2) + dht + jpeg.substr(2), {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("Huffman table"), std::string::npos) << image.status();
}

// Found by the fuzzer in CI: a scan decoding with a Huffman table the file never defined made
// stb read uninitialised tables and fail its own assert, aborting the server. Files that define
// their tables, baseline or progressive, still decode.
TEST(DecodeImage, JpegScanWithAnUndefinedHuffmanTableIsRefused) {
  for (const char* name : {"photo.jpg", "progressive.jpg"}) {
    auto image = DecodeImage(ReadFileBytes(FixturesDir() + "/images/" + name), {});
    EXPECT_TRUE(image.ok()) << name << ": " << image.status();
  }
  std::string jpeg = ReadFileBytes(FixturesDir() + "/images/photo.jpg");
  // Every DHT segment's marker renamed to an application segment (APP4, skipped by decoders):
  // the scans' tables are then never defined.
  for (size_t i = 0; (i = jpeg.find("\xff\xc4", i)) != std::string::npos; i += 2) jpeg[i + 1] = '\xe4';
  EXPECT_TRUE(UsesUndefinedHuffmanTable(jpeg));
  auto image = DecodeImage(jpeg, {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("never defines"), std::string::npos) << image.status();
}

// Found by tests/fuzz/image_decoder_fuzz.cc: stb_image grew its buffer to an IDAT chunk's
// declared length (here 2 GiB) before checking that the bytes were there.
TEST(DecodeImage, PngChunkLongerThanTheFileIsRefused) {
  const std::string png = ReadFileBytes(FixturesDir() + "/images/pattern_0.png");
  ASSERT_GT(png.size(), 33u);
  // The signature and the IHDR chunk, then an IDAT chunk that claims 2^31 - 1 bytes.
  std::string lying = png.substr(0, 33) + std::string("\x7f\xff\xff\xff", 4) + "IDAT" + "\x78\x9c";
  auto image = DecodeImage(lying, {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("runs past the end"), std::string::npos) << image.status();
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
