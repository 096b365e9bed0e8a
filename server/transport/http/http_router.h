// Which route answers a request: patterns of literal segments and {name} captures
// ("/v2/models/{m}/versions/{v}/infer"), matched segment by segment, first added first. The
// captures land in HttpRequest::params, percent-decoded (a client's "my%20model" is the model
// "my model"; "..%2Fx" is "../x", which the name's own check then refuses): segments are split
// before decoding, so an encoded '/' never splits one. No regular expressions: a path is split once.
//
// Thread-safety: Add before serving; Route from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "server/transport/http/http_message.h"

namespace elliptical::server {

// "%XX" (two hex digits) -> that byte; a '%' not followed by two hex digits stays as it is.
std::string PercentDecode(std::string_view segment);

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
