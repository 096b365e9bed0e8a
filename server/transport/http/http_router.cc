#include "server/transport/http/http_router.h"

#include <utility>

#include "absl/strings/str_split.h"

namespace elliptical::server {
namespace {

std::vector<std::string_view> Segments(std::string_view path) {
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::vector<std::string_view> out;
  for (absl::string_view s : absl::StrSplit(absl::string_view(path.data(), path.size()), '/')) {
    out.emplace_back(s.data(), s.size());
  }
  return out;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string PercentDecode(std::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] == '%' && i + 2 < segment.size() && HexDigit(segment[i + 1]) >= 0 &&
        HexDigit(segment[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigit(segment[i + 1]) * 16 + HexDigit(segment[i + 2])));
      i += 2;
    } else {
      out.push_back(segment[i]);
    }
  }
  return out;
}

namespace {

bool Matches(const std::vector<std::string>& pattern, const std::vector<std::string_view>& path,
             std::vector<std::pair<std::string, std::string>>* params) {
  if (pattern.size() != path.size()) return false;
  std::vector<std::pair<std::string, std::string>> captured;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const std::string& p = pattern[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      if (path[i].empty()) return false;
      captured.emplace_back(p.substr(1, p.size() - 2), PercentDecode(path[i]));
    } else if (p != path[i]) {
      return false;
    }
  }
  *params = std::move(captured);
  return true;
}

}  // namespace

void HttpRouter::Add(std::string method, std::string_view pattern, HttpHandler handler) {
  Entry e;
  e.method = std::move(method);
  for (std::string_view s : Segments(pattern)) e.segments.emplace_back(s);
  e.handler = std::move(handler);
  routes_.push_back(std::move(e));
}

HttpRouter::Match HttpRouter::Route(HttpRequest& request, const HttpHandler** handler) const {
  const std::vector<std::string_view> path = Segments(request.path);
  bool path_known = false;
  for (const Entry& e : routes_) {
    std::vector<std::pair<std::string, std::string>> params;
    if (!Matches(e.segments, path, &params)) continue;
    path_known = true;
    if (e.method != request.method) continue;
    request.params = std::move(params);
    *handler = &e.handler;
    return Match::kFound;
  }
  return path_known ? Match::kWrongMethod : Match::kNoRoute;
}

}  // namespace elliptical::server
