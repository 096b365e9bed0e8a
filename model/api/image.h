// Decoded pixels handed to the models: 8-bit RGB, row-major, channels interleaved (HWC).
// Plain data, no LibTorch, so the server can fill it without compiling tensor headers.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace elliptical::model {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3
};

// A client's own preprocessing: the (3, height, width) tensor the model takes, already resized
// and normalised (config.json's "preprocess" mean and std), channels first, row-major,
// little-endian elements. A view: the bytes belong to the caller's request.
struct PixelTensor {
  enum class Type { kFloat32, kFloat16, kBFloat16 };
  int width = 0;
  int height = 0;
  Type type = Type::kFloat32;
  std::string_view data;  // 3 * height * width elements of `type`

  static int ElementBytes(Type type) { return type == Type::kFloat32 ? 4 : 2; }
};

}  // namespace elliptical::model
