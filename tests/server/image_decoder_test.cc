#include "server/input/image_decoder.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/fixtures.h"

namespace elliptical::server {
namespace {

using elliptical::testing::FixturesDir;
using elliptical::testing::ImageFixturesDir;
using elliptical::testing::ReadFileBytes;

std::string ImageFile(const std::string& name) { return ReadFileBytes(ImageFixturesDir() + "/" + name); }

nlohmann::json ImageManifest() {
  std::ifstream in(ImageFixturesDir() + "/expected.json");
  return nlohmann::json::parse(in);
}

// The largest difference between `image` and Pillow's pixels for `name` (-1: another size).
int MaxDifferenceFromPillow(const std::string& name, const model::RgbImage& image) {
  const std::string reference = ImageFile(name + ".rgb");
  if (reference.size() != image.pixels.size()) return -1;
  int max_diff = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<uint8_t>(reference[i]) - image.pixels[i]));
  }
  return max_diff;
}

// Every kind the server takes (tests/fixtures/make_image_fixtures.py): PNG of each colour type and
// depth, palette with tRNS, 1-bit grey, 16-bit grey and RGBA, Adam7-interlaced; JPEG baseline 4:2:0
// and 4:4:4, grey, progressive, Adobe CMYK, with EXIF; WebP lossless, lossy, with alpha. Pillow's
// pixels are the reference, and the decoders match them exactly: Pillow's libjpeg-turbo and
// Debian's use the same integer IDCT and upsampling, both use libwebp, and PNG is lossless
// (max_diff is 0 for all; the manifest holds it per file should a future encoder need one).
TEST(DecodeImage, EveryKindMatchesPillow) {
  const nlohmann::json manifest = ImageManifest();
  ASSERT_GE(manifest.size(), 18u);
  for (const auto& [name, want] : manifest.items()) {
    const std::string bytes = ImageFile(name);
    auto size = ReadImageSize(bytes);
    ASSERT_TRUE(size.ok()) << name << ": " << size.status();
    EXPECT_EQ(size->width, want["width"].get<int>()) << name;
    EXPECT_EQ(size->height, want["height"].get<int>()) << name;
    auto image = DecodeImage(bytes, {});
    ASSERT_TRUE(image.ok()) << name << ": " << image.status();
    EXPECT_EQ(image->width, want["width"].get<int>()) << name;
    EXPECT_EQ(image->height, want["height"].get<int>()) << name;
    const int max_diff = MaxDifferenceFromPillow(name, *image);
    EXPECT_GE(max_diff, 0) << name;
    EXPECT_LE(max_diff, want["max_diff"].get<int>()) << name;
  }
}

// A 69-byte PNG that declares 60000 x 60000: its size is read from the header, and decoding is
// refused on it before any of the 10.8 GB of pixels is allocated.
TEST(DecodeImage, HugeDeclaredPngIsRefusedBeforeAllocating) {
  const std::string png = ImageFile("huge_declared.png");
  ASSERT_LT(png.size(), 100u);
  auto size = ReadImageSize(png);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(size->width, 60000);
  EXPECT_EQ(size->height, 60000);
  auto image = DecodeImage(png, {});
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(image.status().message().find("60000x60000 = 3.6e+09 pixels; the limit is"), std::string::npos)
      << image.status();
}

TEST(DecodeImage, TruncatedFilesOfEachFormatAreRefusedAsTruncated) {
  for (const char* name : {"photo.jpg", "progressive.jpg", "rgb.png", "lossy.webp", "lossless.webp"}) {
    const std::string bytes = ImageFile(name);
    auto image = DecodeImage(bytes.substr(0, bytes.size() * 2 / 3), {});
    ASSERT_FALSE(image.ok()) << name;
    EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(image.status().message().find("ends before its image data"), std::string::npos)
        << name << ": " << image.status();
  }
}

// libpng's default drops an ancillary chunk whose CRC is wrong and goes on; a damaged file is
// refused here whichever chunk is damaged.
TEST(DecodeImage, PngWithABadCrcIsRefused) {
  const std::string png = ImageFile("palette.png");
  for (const char* chunk : {"IDAT", "tRNS"}) {
    const size_t at = png.find(chunk);
    ASSERT_NE(at, std::string::npos) << chunk;
    ASSERT_GE(at, 4u);
    const size_t length = (static_cast<size_t>(static_cast<uint8_t>(png[at - 4])) << 24) |
                          (static_cast<uint8_t>(png[at - 3]) << 16) | (static_cast<uint8_t>(png[at - 2]) << 8) |
                          static_cast<uint8_t>(png[at - 1]);
    std::string damaged = png;
    damaged[at + 4 + length] ^= 0x01;  // the chunk's CRC, after its (intact) data
    auto image = DecodeImage(damaged, {});
    ASSERT_FALSE(image.ok()) << chunk;
    EXPECT_NE(image.status().message().find("CRC error"), std::string::npos) << chunk << ": " << image.status();
  }
}

// Corrupt entropy-coded data is only a warning to libjpeg, which would hand on a partly grey
// picture; it is refused, naming the damage.
TEST(DecodeImage, JpegWithCorruptDataIsRefused) {
  std::string jpeg = ImageFile("photo.jpg");
  const size_t scan = jpeg.find("\xff\xda");
  ASSERT_NE(scan, std::string::npos);
  // The scan's entropy-coded bytes from the middle on replaced by a marker-free pattern.
  for (size_t i = (scan + jpeg.size()) / 2; i + 2 < jpeg.size(); ++i) jpeg[i] = static_cast<char>(0xFE);
  auto image = DecodeImage(jpeg, {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("Corrupt JPEG data"), std::string::npos) << image.status();
}

// A progressive file whose first scan is repeated 150 times: libjpeg-turbo would run every scan
// over the whole image (CPU without bound for a few kilobytes); past 100 scans it is refused.
TEST(DecodeImage, JpegWithTooManyScansIsRefused) {
  const std::string jpeg = ImageFile("progressive.jpg");
  const size_t first = jpeg.find("\xff\xda");
  ASSERT_NE(first, std::string::npos);
  size_t end = first + 2;  // the scan's header, then its data up to the next marker (not RSTn)
  end += (static_cast<uint8_t>(jpeg[end]) << 8) | static_cast<uint8_t>(jpeg[end + 1]);
  while (end + 1 < jpeg.size() &&
         !(static_cast<uint8_t>(jpeg[end]) == 0xFF && jpeg[end + 1] != 0 && (static_cast<uint8_t>(jpeg[end + 1]) & 0xF8) != 0xD0)) {
    ++end;
  }
  std::string repeated;
  for (int i = 0; i < 150; ++i) repeated += jpeg.substr(first, end - first);
  const std::string eoi = jpeg.substr(jpeg.size() - 2);
  ASSERT_EQ(eoi, "\xff\xd9");
  auto some = DecodeImage(jpeg.substr(0, jpeg.size() - 2) + repeated.substr(0, 50 * (end - first)) + eoi, {});
  EXPECT_TRUE(some.ok()) << "60 scans: " << some.status();
  auto image = DecodeImage(jpeg.substr(0, jpeg.size() - 2) + repeated + eoi, {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("more than 100 progressive scans"), std::string::npos) << image.status();
}

TEST(DecodeImage, AnimatedWebpIsRefused) {
  auto image = DecodeImage(ImageFile("animated.webp"), {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("animation"), std::string::npos) << image.status();
}

// Requests decode on many threads at once: each decode has its own libjpeg, libpng and libwebp
// state (and its own error jump), so concurrent decodes give the same pixels as one alone.
TEST(DecodeImage, ConcurrentDecodesAgreeWithPillow) {
  const std::vector<std::string> names = {"photo.jpg", "progressive.jpg", "cmyk.jpg", "rgba.png",
                                          "palette.png", "lossy.webp", "grey16.png"};
  std::vector<std::string> files;
  for (const auto& name : names) files.push_back(ImageFile(name));
  std::vector<int> worst(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        const size_t k = (t + round) % names.size();
        auto image = DecodeImage(files[k], {});
        // A bad file at times among the good ones: its error must stay on its own thread.
        EXPECT_FALSE(DecodeImage(files[k].substr(0, files[k].size() / 2), {}).ok());
        const int diff = image.ok() ? MaxDifferenceFromPillow(names[k], *image) : -1;
        worst[t] = diff < 0 ? -1 : std::max(worst[t], diff);
        if (diff < 0) return;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(worst[t], 0) << "thread " << t;
}

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

// Found by tests/fuzz/image_decoder_fuzz.cc against the former decoder (regressions/image_decoder/
// keeps the input): a DHT segment whose code counts add up to more than 256 overflowed its
// Huffman tables. libjpeg-turbo refuses the table.
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

// Found by the fuzzer against the former decoder, which decoded with uninitialised tables when a
// file defined none. libjpeg-turbo uses the standard tables of the JPEG specification then (as
// Motion-JPEG frames expect): a file written with those tables and stripped of them decodes to
// the same pixels, and a scan that names a table neither the file nor the standard defines is
// refused by name.
TEST(DecodeImage, JpegWithoutHuffmanTablesUsesTheStandardOnes) {
  std::string jpeg = ImageFile("photo.jpg");  // Pillow writes the standard tables by default
  auto with_tables = DecodeImage(jpeg, {});
  ASSERT_TRUE(with_tables.ok()) << with_tables.status();
  // Every DHT segment's marker renamed to an application segment (APP4, skipped by decoders).
  for (size_t i = 0; (i = jpeg.find("\xff\xc4", i)) != std::string::npos; i += 2) jpeg[i + 1] = '\xe4';
  auto without = DecodeImage(jpeg, {});
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_EQ(without->pixels, with_tables->pixels);
  // The scan's first component asks for DC table 3 and AC table 3, which nothing defines.
  const size_t sos = jpeg.find("\xff\xda");
  ASSERT_NE(sos, std::string::npos);
  jpeg[sos + 6] = '\x33';
  auto undefined = DecodeImage(jpeg, {});
  ASSERT_FALSE(undefined.ok());
  EXPECT_NE(undefined.status().message().find("was not defined"), std::string::npos) << undefined.status();
}

// Found by tests/fuzz/image_decoder_fuzz.cc against the former decoder, which grew its buffer to
// an IDAT chunk's declared length (here 2 GiB) before checking that the bytes were there. libpng
// reads the chunk as it goes and stops where the file does.
TEST(DecodeImage, PngChunkLongerThanTheFileIsRefused) {
  const std::string png = ReadFileBytes(FixturesDir() + "/images/pattern_0.png");
  ASSERT_GT(png.size(), 33u);
  // The signature and the IHDR chunk, then an IDAT chunk that claims 2^31 - 1 bytes.
  std::string lying = png.substr(0, 33) + std::string("\x7f\xff\xff\xff", 4) + "IDAT" + "\x78\x9c";
  auto image = DecodeImage(lying, {});
  ASSERT_FALSE(image.ok());
  EXPECT_NE(image.status().message().find("ends before its image data"), std::string::npos) << image.status();
}

TEST(DecodeImage, TextIsRefusedWithAReason) {
  auto image = DecodeImage(ReadFileBytes(FixturesDir() + "/images/not_an_image.png"), {});
  ASSERT_FALSE(image.ok());
  EXPECT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(image.status().message().find("not a PNG or JPEG or WebP"), std::string::npos) << image.status();
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
