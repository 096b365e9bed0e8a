// elliptical-client segment IMAGE: the class map as a colourised PNG and an overlay on IMAGE.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <vector>

#include <png.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/call.h"
#include "server/input/image_decoder.h"

namespace elliptical::client {
namespace {

struct Rgb {
  uint8_t r, g, b;
};

// Distinct, stable colours: hues spaced by the golden angle, class 0 (often background) grey.
Rgb ClassColour(int id) {
  if (id == 0) return {64, 64, 64};
  const double h = std::fmod(id * 137.508, 360.0) / 60.0, s = 0.75, v = 0.95;
  const double c = v * s, x = c * (1 - std::abs(std::fmod(h, 2.0) - 1)), m = v - c;
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(h)) {
    case 0: r = c, g = x; break;
    case 1: r = x, g = c; break;
    case 2: g = c, b = x; break;
    case 3: g = x, b = c; break;
    case 4: r = x, b = c; break;
    default: r = c, b = x; break;
  }
  auto byte = [m](double u) { return static_cast<uint8_t>(std::lround((u + m) * 255)); };
  return {byte(r), byte(g), byte(b)};
}

// libpng's simplified writer: 8-bit RGB rows, no alpha.
bool WritePng(const std::string& path, int w, int h, const std::vector<uint8_t>& rgb) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(w);
  png.height = static_cast<png_uint_32>(h);
  png.format = PNG_FORMAT_RGB;
  const bool ok = png_image_write_to_file(&png, path.c_str(), 0, rgb.data(), w * 3, nullptr) != 0;
  png_image_free(&png);
  return ok;
}

std::vector<int> ClassIds(const v1::SegmentationMask& mask) {
  std::vector<int> ids;
  if (mask.has_class_ids_u8()) {
    for (unsigned char c : mask.class_ids_u8()) ids.push_back(c);
  } else {
    const std::string& b = mask.class_ids_u16();
    for (size_t i = 0; i + 1 < b.size(); i += 2) {
      ids.push_back(static_cast<unsigned char>(b[i]) | static_cast<unsigned char>(b[i + 1]) << 8);
    }
  }
  return ids;
}

}  // namespace

int RunSegment(const CallOptions& options, const std::string& path, const std::string& out_prefix) {
  if (path.empty()) {
    std::cerr << "usage: elliptical-client segment [--model=NAME] [--out=PREFIX] IMAGE\n";
    return 2;
  }
  std::optional<std::string> bytes = ReadFile(path);
  if (!bytes) return 2;
  // The server's decoder, so the overlay sees the pixels the model saw.
  absl::StatusOr<model::RgbImage> decoded = server::DecodeImage(*bytes, {});
  if (!decoded.ok()) {
    std::cerr << "error: " << path << ": " << decoded.status().message() << "\n";
    return 2;
  }
  const int w = decoded->width, h = decoded->height;
  const std::vector<uint8_t> image = std::move(decoded->pixels);

  auto stub = v1::InferenceService::NewStub(Connect(options));
  std::string model = options.model;
  if (model.empty()) model = PickModel(options, stub.get(), v1::MODEL_FAMILY_SEGMENTER);
  if (model.empty()) return 1;
  v1::SegmentRequest request;
  request.set_model_name(model);
  request.add_images()->set_encoded(*std::move(bytes));
  grpc::ClientContext context;
  SetDeadline(options, &context);
  v1::SegmentResponse response;
  grpc::Status status = stub->Segment(&context, request, &response);
  if (!status.ok()) return Report(options, status);
  const v1::SegmentationMask& mask = response.masks(0);
  const std::vector<int> ids = ClassIds(mask);
  if (static_cast<int>(mask.width_px()) != w || static_cast<int>(mask.height_px()) != h ||
      ids.size() != static_cast<size_t>(w) * h) {
    std::cerr << "error: the server returned a " << mask.width_px() << "x" << mask.height_px()
              << " mask for a " << w << "x" << h << " image\n";
    return 1;
  }

  std::vector<uint8_t> colours(ids.size() * 3), overlay(ids.size() * 3);
  std::map<int, int> counts;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Rgb c = ClassColour(ids[i]);
    ++counts[ids[i]];
    const uint8_t rgb[3] = {c.r, c.g, c.b};
    for (int k = 0; k < 3; ++k) {
      colours[3 * i + k] = rgb[k];
      overlay[3 * i + k] = static_cast<uint8_t>((image[3 * i + k] + rgb[k]) / 2);  // 50% blend
    }
  }
  const std::string prefix = out_prefix.empty() ? path.substr(0, path.rfind('.')) : out_prefix;
  const std::string mask_path = prefix + ".mask.png", overlay_path = prefix + ".overlay.png";
  if (!WritePng(mask_path, w, h, colours) || !WritePng(overlay_path, w, h, overlay)) {
    std::cerr << "error: cannot write " << mask_path << " or " << overlay_path << "\n";
    return 2;
  }
  std::cout << path << "  (model " << response.model_name() << ", " << w << "x" << h << ")\n";
  std::vector<std::pair<int, int>> by_share(counts.begin(), counts.end());
  std::sort(by_share.begin(), by_share.end(), [](auto a, auto b) { return a.second > b.second; });
  for (const auto& [id, n] : by_share) {
    const Rgb c = ClassColour(id);
    const std::string label = id < mask.labels_size() ? mask.labels(id) : absl::StrCat("class_", id);
    std::cout << absl::StrFormat("  %-24s %6.2f%%  colour #%02x%02x%02x\n", label, 100.0 * n / ids.size(),
                                 c.r, c.g, c.b);
  }
  std::cout << "wrote " << mask_path << " and " << overlay_path << "\n";
  return 0;
}

}  // namespace elliptical::client
