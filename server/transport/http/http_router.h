// Which route answers a request: patterns of literal segments and {name} captures
// ("/v2/models/{m}/versions/{v}/infer"), matched segment by segment, first added first. The
// captures land in HttpRequest::params. No regular expressions: a path is split once.
//
// Thread-safety: Add before serving; Route from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/transport/http/http_message.h"

namespace elliptical::server {

class HttpRouter {
 public:
  void Add(std::string method, std::string_view pattern, HttpHandler handler);

  enum class Match { kFound, kNoRoute, kWrongMethod };
  // The handler for `request` (its params filled), or why there is none.
  Match Route(HttpRequest& request, const HttpHandler** handler) const;

 private:
  struct Entry {
    std::string method;
    std::vector<std::string> segments;  // "{m}" for a capture
    HttpHandler handler;
  };
  std::vector<Entry> routes_;
};

}  // namespace elliptical::server
