// Images for the tests that compare preprocessing and precision paths: a synthetic one in which
// every byte value appears, and a fixture file decoded by the server's own decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/api/image.h"
#include "server/input/image_decoder.h"
#include "tests/support/fixtures.h"

namespace elliptical::testing {

// Deterministic RGB8 pixels: i * 97 + seed walks all residues mod 256 in 256 steps.
inline model::RgbImage SyntheticImage(int width, int height, int seed) {
  model::RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 97 + seed);
  return image;
}

// The image file at `path`, decoded with default limits; a decode error fails the test.
inline model::RgbImage DecodeImageFile(const std::string& path) {
  auto image = server::DecodeImage(ReadFileBytes(path), {});
  EXPECT_TRUE(image.ok()) << image.status();
  return *image;
}

// The four pattern_N.png fixture images, decoded: the precision tests' shared batch.
inline std::vector<model::RgbImage> PatternImages() {
  std::vector<model::RgbImage> images;
  for (int i = 0; i < 4; ++i) {
    images.push_back(DecodeImageFile(FixturesDir() + "/images/pattern_" + std::to_string(i) + ".png"));
  }
  return images;
}

}  // namespace elliptical::testing
