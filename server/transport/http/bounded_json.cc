#include "server/transport/http/bounded_json.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace elliptical::server::bounded_json {
namespace {

using nlohmann::json;

// What a DOM node costs, as nlohmann 3.11 lays it out on 64-bit libstdc++ and glibc's malloc
// (16 bytes of header per allocation): an estimate from above. Against glibc's count
// (mallinfo2) for DOMs of 100,000 elements of each dense shape ("[0,...]", "[{},...]",
// "[[],...]", "[\"\",...]", long strings, "{\"<i>\":0,...}", "[{\"a\":1},...]") the charge is 1.0 to
// 1.8 times what is allocated.
// Every value: the json itself (16 bytes) and its share of its array's spare capacity (a
// std::vector grows by doubling).
constexpr size_t kValueBytes = 32;
// An array's std::vector or an object's std::map, each allocated on its own.
constexpr size_t kContainerBytes = 64;
// An object member's std::map node less its value: tree links (32) and the key's std::string
// (32) with malloc's header; the key's bytes are charged besides.
constexpr size_t kMemberBytes = 64;
// A string value's std::string, allocated on its own; its bytes are charged besides.
constexpr size_t kStringBytes = 48;

// A string's own allocation, beyond the 15 bytes libstdc++ keeps inside the std::string. The
// DOM takes the lexer's buffer as it is, spare capacity and all.
size_t HeapBytes(const std::string& s) { return s.capacity() > 15 ? s.capacity() + 1 + 16 : 0; }

// The body's bytes for nlohmann's lexer, which reads them one at a time through this iterator:
// every copy shares one position, which the handler reads to say where a limit was crossed
// (nlohmann's SAX events carry no offsets).
class TrackedIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  explicit TrackedIterator(const char** at) : at_(at) {}
  reference operator*() const { return **at_; }
  TrackedIterator& operator++() {
    ++*at_;
    return *this;
  }
  TrackedIterator operator++(int) {
    TrackedIterator before = *this;
    ++*at_;
    return before;
  }
  bool operator==(const TrackedIterator& other) const { return *at_ == *other.at_; }
  bool operator!=(const TrackedIterator& other) const { return *at_ != *other.at_; }

 private:
  const char** at_;
};

// nlohmann's SAX interface, building the DOM as its json_sax_dom_parser does (the last of a
// repeated key wins) with the limits charged on the way, and diverted members' values handed to
// their sinks instead.
class Handler {
 public:
  Handler(absl::string_view text, const Limits& limits, Diverter* diverter, const char* const* at)
      : text_(text), limits_(limits), diverter_(diverter), at_(at) {
    const size_t per_byte = limits.bytes_per_body_byte;
    budget_ = per_byte != 0 && text.size() > std::numeric_limits<size_t>::max() / per_byte
                  ? std::numeric_limits<size_t>::max()
                  : std::max(limits.min_budget_bytes, text.size() * per_byte);
  }

  bool null() {
    Leaf leaf;
    return sink_ != nullptr ? ToSink(leaf) : Add(json(nullptr), 0);
  }
  bool boolean(bool value) {
    Leaf leaf;
    leaf.type = Leaf::Type::kBool;
    leaf.boolean = value;
    return sink_ != nullptr ? ToSink(leaf) : Add(json(value), 0);
  }
  bool number_integer(json::number_integer_t value) {
    Leaf leaf;
    leaf.type = Leaf::Type::kSigned;
    leaf.signed_value = value;
    return sink_ != nullptr ? ToSink(leaf) : Add(json(value), 0);
  }
  bool number_unsigned(json::number_unsigned_t value) {
    Leaf leaf;
    leaf.type = Leaf::Type::kUnsigned;
    leaf.unsigned_value = value;
    return sink_ != nullptr ? ToSink(leaf) : Add(json(value), 0);
  }
  bool number_float(json::number_float_t value, const json::string_t& /*text*/) {
    Leaf leaf;
    leaf.type = Leaf::Type::kFloat;
    leaf.float_value = value;
    return sink_ != nullptr ? ToSink(leaf) : Add(json(value), 0);
  }
  // The lexer's buffer is moved, not copied, into the DOM: a long string is held once (the
  // lexer clears its buffer before the next token anyway).
  bool string(json::string_t& value) {
    if (sink_ != nullptr) {
      Leaf leaf;
      leaf.type = Leaf::Type::kString;
      leaf.string = value;
      return ToSink(leaf);
    }
    const size_t bytes = kStringBytes + HeapBytes(value);
    return Add(json(std::move(value)), bytes);
  }
  bool binary(json::binary_t& /*value*/) { return true; }  // JSON text has none

  bool start_object(std::size_t /*elements: unknown in JSON text*/) {
    if (!Enter()) return false;
    if (sink_ != nullptr) {
      // An object inside a diverted value is one leaf; what it holds is read and dropped.
      if (skipping_ == 0 && !Charge(sink_->Add(Leaf{Leaf::Type::kObject}))) return false;
      ++skipping_;
      return true;
    }
    if (!Charge(kValueBytes + kContainerBytes)) return false;
    stack_.push_back(Place(json::object()));
    keys_.emplace_back();
    return true;
  }

  bool key(json::string_t& name) {
    if (sink_ != nullptr) return true;  // inside an object being skipped
    if (!Charge(kMemberBytes + HeapBytes(name))) return false;
    auto [it, added] = stack_.back()->get_ref<json::object_t&>().emplace(std::move(name), nullptr);
    keys_.back() = it->first;  // a map's keys stay put while the map lives
    member_ = &it->second;
    if (diverter_ != nullptr) {
      if (Sink* sink = diverter_->Divert(Path(), *stack_.back(), it->first, text_.size() - Offset())) {
        if (!Charge(kValueBytes + kContainerBytes)) return false;
        *member_ = json::binary(json::binary_t::container_type(), diversions_++);
        sink_ = sink;
        sink_arrays_ = 0;
        skipping_ = 0;
      }
    }
    return true;
  }

  bool end_object() {
    --depth_;
    if (sink_ != nullptr) {
      if (--skipping_ == 0 && sink_arrays_ == 0) sink_ = nullptr;  // the object was the value
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  bool start_array(std::size_t /*elements: unknown in JSON text*/) {
    if (!Enter()) return false;
    if (sink_ != nullptr) {
      if (skipping_ > 0) {
        ++skipping_;
      } else {
        sink_->BeginArray(sink_arrays_++);
      }
      return true;
    }
    if (!Charge(kValueBytes + kContainerBytes)) return false;
    stack_.push_back(Place(json::array()));
    keys_.emplace_back();
    return true;
  }

  bool end_array() {
    --depth_;
    if (sink_ != nullptr) {
      if (skipping_ > 0) {
        --skipping_;  // an array inside a skipped object: the object is still open
      } else if (--sink_arrays_ == 0) {
        sink_ = nullptr;
      }
      return true;
    }
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*error*/) {
    // nlohmann counts the bytes read, the offending one (or the end) included.
    status_ = absl::InvalidArgumentError(
        absl::StrCat("the request body is not valid JSON (at byte offset ", position > 0 ? position - 1 : 0, ")"));
    return false;
  }

  const absl::Status& status() const { return status_; }
  json TakeRoot() { return std::move(root_); }

 private:
  size_t Offset() const { return static_cast<size_t>(*at_ - text_.data()); }

  bool Refuse(std::string message) {
    status_ = absl::InvalidArgumentError(std::move(message));
    return false;
  }

  // A container opens: refused past the depth limit, before anything is allocated for it.
  bool Enter() {
    if (depth_ >= limits_.max_depth) {
      // The lexer has just read the bracket.
      return Refuse(absl::StrCat("the JSON body nests deeper than ", limits_.max_depth, " levels (at byte offset ",
                                 Offset() - 1, ")"));
    }
    ++depth_;
    return true;
  }

  bool Charge(size_t bytes) {
    used_ += bytes;
    if (used_ <= budget_) return true;
    return Refuse(absl::StrCat("the JSON body needs more than ", budget_, " bytes of memory to parse (",
                               limits_.bytes_per_body_byte, " per body byte, at least ", limits_.min_budget_bytes,
                               "; at byte offset ", Offset(), ")"));
  }

  // Where a new value goes: the root, the end of the open array, or the member whose key came
  // last.
  json* Place(json&& value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *stack_.back();
    if (parent.is_array()) {
      auto& elements = parent.get_ref<json::array_t&>();
      elements.push_back(std::move(value));
      return &elements.back();
    }
    *member_ = std::move(value);
    return member_;
  }

  bool Add(json&& value, size_t extra) {
    if (!Charge(kValueBytes + extra)) return false;
    Place(std::move(value));
    return true;
  }

  bool ToSink(const Leaf& leaf) {
    if (skipping_ > 0) return true;
    if (!Charge(sink_->Add(leaf))) return false;
    if (sink_arrays_ == 0) sink_ = nullptr;  // the scalar was the whole value
    return true;
  }

  // The steps from the root to the innermost open object (the last of stack_).
  std::vector<PathStep> Path() const {
    std::vector<PathStep> path(stack_.size() - 1);
    for (size_t i = 0; i + 1 < stack_.size(); ++i) {
      if (stack_[i]->is_array()) {
        path[i].in_array = true;
        path[i].index = stack_[i]->size() - 1;  // the element being parsed is the last
      } else {
        path[i].key = keys_[i];
      }
    }
    return path;
  }

  const absl::string_view text_;
  const Limits& limits_;
  Diverter* const diverter_;
  const char* const* const at_;
  size_t budget_ = 0;
  size_t used_ = 0;
  int depth_ = 0;  // containers open, the DOM's and the diverted values'
  absl::Status status_;

  json root_;
  std::vector<json*> stack_;            // the DOM's open containers, outermost first
  std::vector<absl::string_view> keys_;  // for an open object: the key of its member being parsed
  json* member_ = nullptr;              // the value of the member whose key came last

  Sink* sink_ = nullptr;  // set while a diverted value is parsed
  int sink_arrays_ = 0;   // its arrays open
  int skipping_ = 0;      // containers open inside one of its objects (a leaf)
  uint64_t diversions_ = 0;
};

}  // namespace

absl::StatusOr<json> Parse(absl::string_view text, const Limits& limits, Diverter* diverter) {
  const char* at = text.data();
  const char* end = text.data() + text.size();
  Handler handler(text, limits, diverter, &at);
  if (!json::sax_parse(TrackedIterator(&at), TrackedIterator(&end), &handler)) {
    if (!handler.status().ok()) return handler.status();
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  return handler.TakeRoot();
}

}  // namespace elliptical::server::bounded_json
