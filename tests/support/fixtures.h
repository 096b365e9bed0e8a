// Where the generated test fixtures live (tests/fixtures/make_classifier_fixtures.py writes
// them; CTest runs it first) and small readers for them.
#pragma once

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace elliptical::testing {

// The build tree (CTest sets ELLIPTICAL_BUILD_DIR; run by hand, the working directory).
inline std::string BuildDir() {
  const char* dir = std::getenv("ELLIPTICAL_BUILD_DIR");
  return dir ? dir : ".";
}

inline std::string FixturesDir() { return BuildDir() + "/fixtures/classifier"; }
// tests/fixtures/make_model_fixtures.py: segmenters, language models, a timm ViT.
inline std::string ModelFixturesDir() { return BuildDir() + "/fixtures/core"; }
// tests/fixtures/make_image_fixtures.py: every image kind with Pillow's pixels for it.
inline std::string ImageFixturesDir() { return BuildDir() + "/fixtures/images"; }
inline std::string ServerBinary() { return BuildDir() + "/server/elliptical-server"; }
inline std::string ClientBinary() { return BuildDir() + "/client/elliptical-client"; }

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// expected.json: image file -> attention mode -> reference probabilities.
inline nlohmann::json ExpectedProbabilities() {
  std::ifstream in(FixturesDir() + "/expected.json");
  return nlohmann::json::parse(in);
}

}  // namespace elliptical::testing
