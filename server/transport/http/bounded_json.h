// JSON request bodies parsed under limits that a hostile client cannot push past. nlohmann's
// DOM parser (json::parse) takes whatever a body asks for: an unclosed "[" repeated 16 MiB times
// holds ~77 bytes of memory per body byte, and a KServe "data" array of 1 MiB of small numbers
// becomes 26 MiB of nodes. Here nlohmann's SAX parser (json::sax_parse: iterative, no recursion)
// feeds a handler that builds the same DOM, refusing
//   - containers nested deeper than Limits::max_depth, and
//   - a DOM larger than its budget: Limits::bytes_per_body_byte times the body's size (at least
//     Limits::min_budget_bytes), each node charged what nlohmann and libstdc++ allocate for it
//     (bounded_json.cc lists the charges);
// and lets the caller take chosen members' values out of the DOM (a Diverter): their arrays are
// flattened and each element handed to a Sink as it is parsed, so that a tensor's "data" goes
// straight into its typed buffer (server/protocols/kserve/kserve_json.cc) and never becomes nodes.
//
// Every refusal is INVALID_ARGUMENT naming the limit and the byte offset where it was crossed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace elliptical::server::bounded_json {

struct Limits {
  // Arrays and objects open at once. KServe's deepest body is {"inputs": [{"data": ...}]} with
  // "data" nested as deep as its tensor's rank (an image batch [N, H, W, C]: 4; kserve_json.cc
  // refuses beyond 16), so 20; OpenAI's is 3. 32 leaves room for clients' extra fields and stops
  // a nesting bomb within 32 bytes.
  int max_depth = 32;
  // The DOM and the sinks may hold this many bytes per body byte. Real bodies hold 1 to 3 (their
  // strings, a few small nodes; a tensor's data in its sink 0.5 to 4.5); the densest bodies for
  // nlohmann's nodes ("[0,0,...", "[{},{},...") are charged 16 to 32, so they are refused by the
  // middle of their body and a parse holds at most about 8 times the body (the HTTP port parses
  // a few bodies at once, one per event-loop thread at most).
  size_t bytes_per_body_byte = 8;
  // ... and at least this much whatever the body's size, so that no small body is refused for
  // its shape (1,024 one-letter stop strings are charged about 80 KiB).
  size_t min_budget_bytes = size_t{1} << 20;
};

// One value inside a diverted member that is not an array, as the parser read it.
struct Leaf {
  enum class Type {
    kNull,
    kBool,
    kSigned,    // an integer with a minus sign ("-0" too): signed_value
    kUnsigned,  // an integer without one: unsigned_value
    kFloat,     // a number with a fraction or exponent, or an integer beyond 64 bits
    kString,    // unescaped
    kObject,    // an object, as one element: its members are skipped, never stored
  };
  Type type = Type::kNull;
  bool boolean = false;
  int64_t signed_value = 0;
  uint64_t unsigned_value = 0;
  double float_value = 0;
  absl::string_view string;  // valid during Sink::Add only
};

// Takes a diverted member's value as it is parsed: its arrays flattened, row-major.
class Sink {
 public:
  virtual ~Sink() = default;
  // An array opens `depth` arrays deep inside the value (0: the value itself).
  virtual void BeginArray(int depth) = 0;
  // A value that is not an array, in document order. Returns the bytes of memory the sink took
  // on for it (0 when none), which count against the parse's budget.
  virtual size_t Add(const Leaf& leaf) = 0;
};

// One step from the root to an object: a member of an object, or an element of an array.
struct PathStep {
  bool in_array = false;
  absl::string_view key;  // !in_array
  size_t index = 0;       // in_array
};

// Chooses the members whose values go to a Sink instead of the DOM.
class Diverter {
 public:
  virtual ~Diverter() = default;
  // Asked at every member's key: `path` leads from the root to `object`, the object the member
  // belongs to (holding the members before it); `bytes_left` is how much of the body follows
  // the key (for a sink to size its buffer). Returns the member's sink, or nullptr for the DOM.
  // A key repeated in one object is asked again, and the later value is the member's (as
  // nlohmann's DOM keeps the last).
  virtual Sink* Divert(const std::vector<PathStep>& path, const nlohmann::json& object, absl::string_view key,
                       size_t bytes_left) = 0;
};

// Parses `text` as one JSON value (nothing but whitespace after it). A diverted member stays in
// its object as a binary value, which JSON text cannot produce, whose subtype numbers the
// diversion: 0 for the first sink the diverter returned, 1 for the next.
// INVALID_ARGUMENT: "the request body is not valid JSON (at byte offset N)", or a limit.
absl::StatusOr<nlohmann::json> Parse(absl::string_view text, const Limits& limits = Limits(),
                                     Diverter* diverter = nullptr);

}  // namespace elliptical::server::bounded_json
