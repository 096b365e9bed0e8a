#include "server/repository/model_versions.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace elliptical::server {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A fingerprint reads at most this many directory entries: a model is a handful of files, and
// a directory of millions must not stall a poll.
constexpr int kMaxFingerprintEntries = 10000;
// Versions are positive 63-bit numbers; more than this many digits cannot be one.
constexpr size_t kMaxVersionDigits = 18;

bool IsVersionName(const std::string& s) {
  if (s.empty() || s.size() > kMaxVersionDigits || s[0] == '0') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool HasConfig(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "config.json", ec);
}

// Names, sizes and modification times of every file under `dir` (numbered version
// subdirectories excluded when `skip_versions`), hashed: what changes when a file is replaced,
// rewritten or added.
void Fingerprint(const fs::path& dir, bool skip_versions, VersionDirectory* out) {
  std::vector<std::string> lines;
  std::error_code ec;
  int seen = 0;
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator() && seen < kMaxFingerprintEntries; it.increment(ec), ++seen) {
    const fs::path rel = it->path().lexically_relative(dir);
    if (skip_versions && it.depth() == 0 && it->is_directory(ec) && IsVersionName(rel.string())) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    const auto size = it->file_size(ec);
    const auto time = it->last_write_time(ec).time_since_epoch().count();
    out->bytes += static_cast<int64_t>(size);
    lines.push_back(absl::StrCat(rel.string(), "\t", size, "\t", time));
  }
  std::sort(lines.begin(), lines.end());
  out->fingerprint = absl::StrCat(std::hash<std::string>()(absl::StrJoin(lines, "\n")), ":", lines.size());
}

absl::Status PolicyError(const std::string& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(
      file, ": \"version_policy\" ", what,
      "; expected {\"latest\": {\"num_versions\": N}}, {\"specific\": {\"versions\": [1, 2]}} or {\"all\": {}}"));
}

absl::StatusOr<VersionPolicy> ParsePolicy(const json& config, const std::string& file) {
  VersionPolicy policy;
  if (!config.is_object()) return absl::InvalidArgumentError(absl::StrCat(file, ": not a JSON object"));
  for (const auto& [key, value] : config.items()) {
    if (key != "version_policy") {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": unknown key \"", key,
          "\": beside numbered version directories, the model's own config.json holds only \"version_policy\""));
    }
  }
  if (!config.contains("version_policy")) return policy;
  const json& p = config["version_policy"];
  if (!p.is_object() || p.size() != 1) return PolicyError(file, "must be an object with one key");
  const std::string kind = p.begin().key();
  const json& body = p.begin().value();
  if (!body.is_object()) return PolicyError(file, absl::StrCat("\"", kind, "\" must be an object"));
  if (kind == "latest") {
    policy.kind = VersionPolicy::Kind::kLatest;
    if (body.contains("num_versions")) {
      const json& n = body["num_versions"];
      if (!n.is_number_integer() || n.get<int64_t>() < 1 || n.get<int64_t>() > 1000) {
        return PolicyError(file, "latest.num_versions must be an integer from 1 to 1000");
      }
      policy.latest = n.get<int>();
    }
  } else if (kind == "specific") {
    policy.kind = VersionPolicy::Kind::kSpecific;
    const json& v = body.contains("versions") ? body["versions"] : json();
    if (!v.is_array() || v.empty() || v.size() > 1000) {
      return PolicyError(file, "specific.versions must be a list of 1 to 1000 versions");
    }
    for (const json& x : v) {
      if (!x.is_number_integer() || x.get<int64_t>() < 1) {
        return PolicyError(file, "specific.versions must hold integers >= 1");
      }
      policy.specific.push_back(x.get<int64_t>());
    }
    std::sort(policy.specific.begin(), policy.specific.end());
    policy.specific.erase(std::unique(policy.specific.begin(), policy.specific.end()), policy.specific.end());
  } else if (kind == "all") {
    policy.kind = VersionPolicy::Kind::kAll;
  } else {
    return PolicyError(file, absl::StrCat("has unknown kind \"", kind, "\""));
  }
  return policy;
}

}  // namespace

absl::Status CheckModelName(absl::string_view name) {
  if (name.empty() || name.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("model name: ", name.size(), " bytes; a model name has 1 to 255 bytes"));
  }
  if (name == "." || name == "..") {
    return absl::InvalidArgumentError("model name: \".\" and \"..\" are not model names");
  }
  for (char c : name) {
    if (c == '/' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          "model name: must not hold '/', '\\' or control characters (it names one directory of the repository)");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseVersion(absl::string_view name, absl::string_view version) {
  if (version.empty()) return 0;
  int64_t v = 0;
  if (version.size() > kMaxVersionDigits || !std::all_of(version.begin(), version.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(version, &v) || v < 1) {
    return absl::InvalidArgumentError(absl::StrCat("model \"", name, "\": version \"", version.substr(0, 32),
                                                   "\" is not a version (a decimal number >= 1, or empty for the newest)"));
  }
  return v;
}

absl::StatusOr<std::vector<std::string>> ListModelDirectories(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat("model repository ", root, " is not a directory"));
  }
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(root, ec)) {
    std::error_code item_ec;
    if (!item.is_directory(item_ec)) continue;
    const std::string name = item.path().filename().string();
    if (!CheckModelName(name).ok()) continue;
    bool versioned = false;
    for (const auto& sub : fs::directory_iterator(item.path(), item_ec)) {
      if (IsVersionName(sub.path().filename().string()) && HasConfig(sub.path())) {
        versioned = true;
        break;
      }
    }
    if (versioned || HasConfig(item.path())) names.push_back(name);
  }
  if (ec) return absl::InternalError(absl::StrCat("reading ", root, ": ", ec.message()));
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<ModelVersions> ReadModelVersions(const std::string& root, const std::string& name,
                                                bool fingerprint) {
  if (absl::Status s = CheckModelName(name); !s.ok()) return s;
  const fs::path dir = fs::path(root) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("no model directory \"", name, "\" in the model repository"));
  }
  ModelVersions out;
  for (const auto& sub : fs::directory_iterator(dir, ec)) {
    const std::string base = sub.path().filename().string();
    std::error_code sub_ec;
    if (!IsVersionName(base) || !sub.is_directory(sub_ec) || !HasConfig(sub.path())) continue;
    VersionDirectory v;
    absl::SimpleAtoi(base, &v.version);
    v.path = sub.path().string();
    if (fingerprint) Fingerprint(sub.path(), /*skip_versions=*/false, &v);
    out.found[v.version] = std::move(v);
  }
  const std::string config_file = (dir / "config.json").string();
  if (out.found.empty()) {
    if (!HasConfig(dir)) {
      return absl::NotFoundError(absl::StrCat("model directory \"", name,
                                              "\" holds no config.json, nor numbered version directories with one"));
    }
    // A flat model directory: version 1, served whatever the policy.
    VersionDirectory v;
    v.version = 1;
    v.path = dir.string();
    if (fingerprint) Fingerprint(dir, /*skip_versions=*/true, &v);
    out.found[1] = std::move(v);
    out.wanted = {1};
    return out;
  }
  if (HasConfig(dir)) {
    std::ifstream in(config_file);
    json config = json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(config_file, ": not valid JSON"));
    auto policy = ParsePolicy(config, config_file);
    if (!policy.ok()) return policy.status();
    out.policy = *std::move(policy);
  }
  switch (out.policy.kind) {
    case VersionPolicy::Kind::kLatest:
      for (auto it = out.found.rbegin(); it != out.found.rend() && static_cast<int>(out.wanted.size()) < out.policy.latest; ++it) {
        out.wanted.push_back(it->first);
      }
      break;
    case VersionPolicy::Kind::kAll:
      for (auto it = out.found.rbegin(); it != out.found.rend(); ++it) out.wanted.push_back(it->first);
      break;
    case VersionPolicy::Kind::kSpecific:
      for (auto it = out.policy.specific.rbegin(); it != out.policy.specific.rend(); ++it) {
        if (out.found.count(*it)) out.wanted.push_back(*it);
      }
      if (out.wanted.empty()) {
        out.why_none = absl::StrCat(config_file, ": version_policy names versions [",
                                    absl::StrJoin(out.policy.specific, ", "), "], none of which is in the directory");
      }
      break;
  }
  return out;
}

}  // namespace elliptical::server
