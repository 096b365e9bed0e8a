// The files that hold the server's secrets, read and checked at start-up so that a typo fails
// the launch with the flag and file named, rather than locking every client out later.
//
// Messages never quote a secret: they name the file and the line number.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace elliptical::server::security {

// The whole file named by `--<flag>=<path>`; the error names both.
absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag, const std::string& path);

// --auth_tokens_file: one bearer token per line. Blank lines and lines whose first non-blank
// character is '#' are ignored; surrounding blanks are trimmed. A token is made of the
// characters RFC 6750 allows (letters, digits, - . _ ~ + / and trailing =); anything else,
// or a file with no token, is an error naming the line. `source` names the file in messages.
absl::StatusOr<std::vector<std::string>> ParseTokenFile(absl::string_view content,
                                                        absl::string_view source);

// --metrics_auth_file: one "user:password" per line, with the same comment and blank rules.
// The user may not be empty nor contain ':'; the password is everything after the first ':'
// (it may contain ':'), and may not be empty. -> the lines as given, "user:password".
absl::StatusOr<std::vector<std::string>> ParseBasicAuthFile(absl::string_view content,
                                                            absl::string_view source);

}  // namespace elliptical::server::security
