// A model repository for server tests, made of the fixture models with patched settings: each
// variant isolates one serving behaviour.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/fixtures.h"

namespace elliptical::testing {

// Copies a fixture model under a new name with its config.json merged with `patch`.
inline void AddModel(const std::filesystem::path& repo, const std::string& name,
                     const std::filesystem::path& source, const nlohmann::json& patch) {
  namespace fs = std::filesystem;
  const fs::path dir = repo / name;
  fs::create_directories(dir);
  fs::copy(source, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  std::ifstream in(dir / "config.json");
  nlohmann::json config = nlohmann::json::parse(in);
  config.merge_patch(patch);
  std::ofstream(dir / "config.json") << config.dump(2);
}

// build/serving_repo_<pid>_<tag>: classifiers vit-batched (batches of 4 after up to 300 ms),
// vit-single (no batching), vit-slow (1.5 s delay, queue of 2), vit-delay (100 ms wait per
// request); segmenter seg; language models
// lm (8 running) and lm-one-slot (1 running).
inline std::string MakeServingRepository(const std::string& tag) {
  namespace fs = std::filesystem;
  const fs::path repo = fs::path(BuildDir()) / ("serving_repo_" + std::to_string(getpid()) + "_" + tag);
  fs::remove_all(repo);
  const fs::path vit = fs::path(FixturesDir()) / "models" / "vit-test";
  const fs::path seg = fs::path(ModelFixturesDir()) / "segmenter" / "models" / "seg-linear";
  const fs::path lm = fs::path(ModelFixturesDir()) / "lm" / "models" / "lm-chat";
  AddModel(repo, "vit-batched", vit, {{"batching", {{"max_batch_size", 4}, {"max_queue_delay_ms", 300}}}});
  AddModel(repo, "vit-single", vit, {{"batching", {{"max_batch_size", 1}, {"max_queue_delay_ms", 0}}}});
  AddModel(repo, "vit-slow", vit,
           {{"batching", {{"max_batch_size", 8}, {"max_queue_delay_ms", 1500}, {"max_queue_size", 2}}}});
  // Batches never fill (one client, room for 64): every request waits out exactly 100 ms.
  AddModel(repo, "vit-delay", vit, {{"batching", {{"max_batch_size", 64}, {"max_queue_delay_ms", 100}}}});
  AddModel(repo, "seg", seg, {{"batching", {{"max_batch_size", 4}, {"max_queue_delay_ms", 5}}}});
  AddModel(repo, "lm", lm, {{"generation", {{"max_running", 8}, {"max_new_tokens_limit", 2000}}}});
  AddModel(repo, "lm-one-slot", lm, {{"generation", {{"max_running", 1}, {"max_new_tokens_limit", 2000}}}});
  return repo.string();
}

}  // namespace elliptical::testing
