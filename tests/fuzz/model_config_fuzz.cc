// Arbitrary text as a model's config.json, through everything that reads one at load time: the
// model directory (family), the key schema check, the family's parser and the server's serving
// settings. Each must answer with a status, never crash, and stay within time and memory.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "model/config/classifier_config.h"
#include "model/config/config_schema.h"
#include "model/config/lm_config.h"
#include "model/config/model_dir.h"
#include "model/config/segmenter_config.h"
#include "server/repository/serving_config.h"

namespace {

namespace m = elliptical::model;

// A model directory of its own (the parsers read <dir>/config.json), with a labels file for the
// configs that name one; in memory-backed /dev/shm where there is one.
std::string* directory = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char pattern[] = "/dev/shm/elliptical-config-fuzz-XXXXXX";
  char fallback[] = "/tmp/elliptical-config-fuzz-XXXXXX";
  const char* made = mkdtemp(pattern);
  if (!made) made = mkdtemp(fallback);
  if (!made) std::abort();
  directory = new std::string(made);
  std::ofstream labels(*directory + "/labels.txt");
  for (int i = 0; i < 10; ++i) labels << "digit " << i << "\n";
  // Leaves nothing behind when the run ends.
  std::atexit([] {
    std::remove((*directory + "/labels.txt").c_str());
    std::remove((*directory + "/config.json").c_str());
    rmdir(directory->c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream out(*directory + "/config.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto dir = m::ReadModelDirectory(*directory);
  if (!dir.ok()) return 0;
  m::KeySchema schema = m::FamilyKeys(dir->family);
  m::Merge(m::ServingKeys(), &schema);
  (void)m::CheckKnownKeys(dir->config, schema, "config.json");
  switch (dir->family) {
    case m::ModelFamily::kImageClassifier: (void)m::ReadClassifierConfig(*directory); break;
    case m::ModelFamily::kSegmenter: (void)m::ReadSegmenterConfig(*directory); break;
    case m::ModelFamily::kLanguageModel: (void)m::ReadLmConfig(*directory); break;
  }
  (void)elliptical::server::ParseServingConfig(dir->config, elliptical::server::ServingOverrides{});
  return 0;
}
