#include "server/security/credential_files.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace elliptical::server::security {
namespace {

// The meaningful lines of a secrets file, with their 1-based line numbers.
std::vector<std::pair<int, absl::string_view>> Entries(absl::string_view content) {
  std::vector<std::pair<int, absl::string_view>> out;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    ++number;
    line = absl::StripAsciiWhitespace(line);  // also drops the '\r' of CRLF files
    if (line.empty() || line.front() == '#') continue;
    out.emplace_back(number, line);
  }
  return out;
}

bool IsTokenCharacter(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~' || c == '+' || c == '/';
}

bool IsToken(absl::string_view token) {
  size_t i = 0;
  while (i < token.size() && IsTokenCharacter(token[i])) ++i;
  if (i == 0) return false;
  while (i < token.size() && token[i] == '=') ++i;  // base64 padding only at the end
  return i == token.size();
}

}  // namespace

absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": cannot read the file (", std::strerror(errno), ")"));
  }
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

absl::StatusOr<std::vector<std::string>> ParseTokenFile(absl::string_view content,
                                                        absl::string_view source) {
  std::vector<std::string> tokens;
  for (const auto& [number, line] : Entries(content)) {
    if (!IsToken(line)) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, " line ", number,
          ": not a bearer token (one token per line; letters, digits and - . _ ~ + / with "
          "optional trailing '=', no spaces)"));
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": holds no token, so no client could call the server"));
  }
  return tokens;
}

absl::StatusOr<std::vector<std::string>> ParseBasicAuthFile(absl::string_view content,
                                                            absl::string_view source) {
  std::vector<std::string> entries;
  for (const auto& [number, line] : Entries(content)) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == line.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          source, " line ", number, ": expected user:password (both non-empty)"));
    }
    entries.emplace_back(line);
  }
  if (entries.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": holds no user:password line, so no scraper could read /metrics"));
  }
  return entries;
}

}  // namespace elliptical::server::security
