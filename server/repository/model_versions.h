// How one model's directory in the repository holds its versions, and which of them to serve.
//
//   models/deit/config.json ...            a flat model directory: version 1
//   models/deit/1/config.json ...          numbered subdirectories: one version each, every one a
//   models/deit/2/config.json ...          complete model directory of its own
//   models/deit/config.json                optional beside them: {"version_policy": ...} only
//
// The version policy (Triton's): {"latest": {"num_versions": N}} (default N = 1),
// {"specific": {"versions": [1, 3]}} or {"all": {}}.
//
// Knows nothing of loading: it reads directories and says what they hold.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace elliptical::server {

struct VersionPolicy {
  enum class Kind { kLatest, kSpecific, kAll };
  Kind kind = Kind::kLatest;
  int latest = 1;                  // kLatest
  std::vector<int64_t> specific;   // kSpecific, ascending
};

// One version found on disk.
struct VersionDirectory {
  int64_t version = 1;
  std::string path;         // the directory holding its config.json
  std::string fingerprint;  // changes when any file in it changes (names, sizes, times)
  int64_t bytes = 0;        // the files' total size: what loading it reads
};

struct ModelVersions {
  VersionPolicy policy;
  std::map<int64_t, VersionDirectory> found;  // every version on disk
  // The versions the policy serves, newest first. Empty when the policy names none that exist
  // (then `why_none` says so).
  std::vector<int64_t> wanted;
  std::string why_none;
};

// A model name is one directory entry: 1 to 255 bytes, no '/', not "." or "..", no control
// characters. INVALID_ARGUMENT naming the rule otherwise (a request's name reaches the disk).
absl::Status CheckModelName(absl::string_view name);

// Reads `<root>/<name>`: NOT_FOUND when it is not a model directory (no config.json in it or
// in a numbered subdirectory), INVALID_ARGUMENT for a bad version policy (naming the file).
// `fingerprint`: also read every file's size and time (VersionDirectory's fingerprint and
// bytes, which loading needs); without, only what versions there are (the index).
absl::StatusOr<ModelVersions> ReadModelVersions(const std::string& root, const std::string& name,
                                                bool fingerprint = true);

// The model directories under `root` (sorted); fails only when `root` cannot be read.
absl::StatusOr<std::vector<std::string>> ListModelDirectories(const std::string& root);

// "" (the newest ready version) or a decimal version >= 1; INVALID_ARGUMENT naming `name`
// otherwise. Returns 0 for "".
absl::StatusOr<int64_t> ParseVersion(absl::string_view name, absl::string_view version);

}  // namespace elliptical::server
