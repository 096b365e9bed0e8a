// Bounded JSON parsing of request bodies (server/transport/http/bounded_json.h): the DOM it builds is
// nlohmann's, nesting and memory are capped, and diverted members reach their sinks flattened.
#include "server/transport/http/bounded_json.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace elliptical::server::bounded_json {
namespace {

using nlohmann::json;

std::string Repeat(const std::string& open, const std::string& item, size_t n, const std::string& close) {
  std::string s = open;
  for (size_t i = 0; i < n; ++i) s += (i == 0 ? "" : ",") + item;
  return s + close;
}

std::string ErrorOf(absl::string_view text, const Limits& limits = Limits()) {
  auto parsed = Parse(text, limits);
  EXPECT_FALSE(parsed.ok()) << text.substr(0, 80);
  if (parsed.ok()) return "";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(parsed.status().message());
}

TEST(BoundedJson, BuildsTheSameDomAsNlohmann) {
  // Every kind of value, integers at both ends of 64 bits, a repeated key (the last wins), and
  // escapes in keys and strings.
  const std::string text = R"({"a": [1, -2, 0, -0, 18446744073709551615, -9223372036854775808, 1.5e3, 1e400000000000000000000,
      true, false, null, "", [], {}],
    "n\u00e9st\"ed": {"x": {"y": [[1], [2, [3]]]}, "x": 7},
    "s": "quote \" backslash \\ slash \/ controls \b\f\n\r\t unicode \u00e9 \u20ac \ud83d\ude00 nul \u0000 end",
    "big": 123456789012345678901234567890})";
  // 1e400000000000000000000 overflows a double: nlohmann refuses it, and so must we.
  EXPECT_FALSE(json::accept(text));
  EXPECT_NE(ErrorOf(text).find("not valid JSON"), std::string::npos);

  std::string valid = text;
  const std::string overflow = "1e400000000000000000000";
  valid.replace(valid.find(overflow), overflow.size(), "1e-7");
  auto parsed = Parse(valid);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const json reference = json::parse(valid);
  EXPECT_EQ(*parsed, reference);
  EXPECT_EQ((*parsed)["n\xc3\xa9st\"ed"]["x"], 7);
  EXPECT_EQ((*parsed)["s"].get<std::string>(),
            std::string("quote \" backslash \\ slash / controls \b\f\n\r\t unicode \xc3\xa9 \xe2\x82\xac "
                        "\xf0\x9f\x98\x80 nul ") + std::string(1, '\0') + " end");
  EXPECT_TRUE((*parsed)["a"][4].is_number_unsigned());
  EXPECT_FALSE((*parsed)["a"][3].is_number_unsigned());  // -0: a signed 0, as nlohmann reads it
  EXPECT_TRUE((*parsed)["big"].is_number_float());      // beyond 64 bits: a double

  // Scalars at the root, whitespace around.
  EXPECT_EQ(*Parse(" \"x\" \n"), json("x"));
  EXPECT_EQ(*Parse("42"), json(42));
}

TEST(BoundedJson, InvalidJsonSaysWhere) {
  EXPECT_EQ(ErrorOf("{not json"), "the request body is not valid JSON (at byte offset 2)");
  EXPECT_EQ(ErrorOf(""), "the request body is not valid JSON (at byte offset 0)");  // the end
  EXPECT_EQ(ErrorOf("[1,]"), "the request body is not valid JSON (at byte offset 3)");
  EXPECT_NE(ErrorOf("{} {}").find("not valid JSON"), std::string::npos);  // one value only
  EXPECT_NE(ErrorOf("\"\\ud800\"").find("not valid JSON"), std::string::npos);  // a lone surrogate
  EXPECT_NE(ErrorOf("[\"\xff\"]").find("not valid JSON"), std::string::npos);    // not UTF-8
}

TEST(BoundedJson, NestingBombIsRefusedAtTheLimit) {
  // An unclosed "[" a million times: nlohmann's DOM parser held ~77 bytes per byte of it.
  const std::string bomb(1 << 20, '[');
  EXPECT_EQ(ErrorOf(bomb), "the JSON body nests deeper than 32 levels (at byte offset 32)");
  // 32 levels parse; the 33rd is refused, objects and arrays alike.
  const std::string deepest = std::string(32, '[') + std::string(32, ']');
  EXPECT_TRUE(Parse(deepest).ok());
  EXPECT_NE(ErrorOf(std::string(33, '[') + std::string(33, ']')).find("deeper than 32 levels (at byte offset 32)"),
            std::string::npos);
  std::string objects;
  for (int i = 0; i < 40; ++i) objects += "{\"k\": ";
  objects += "1" + std::string(40, '}');
  EXPECT_NE(ErrorOf(objects).find("deeper than 32 levels (at byte offset 192)"), std::string::npos);
  Limits shallow;
  shallow.max_depth = 2;
  EXPECT_TRUE(Parse("[[1]]", shallow).ok());
  EXPECT_EQ(ErrorOf("[[[1]]]", shallow), "the JSON body nests deeper than 2 levels (at byte offset 2)");
}

TEST(BoundedJson, DomBeyondItsBudgetIsRefused) {
  // "[{},{},...]" is charged 32 bytes per body byte: past the budget of 8 per byte a quarter of
  // the way in.
  const std::string dense = Repeat("[", "{}", 1 << 20, "]");
  const std::string error = ErrorOf(dense);
  EXPECT_NE(error.find("the JSON body needs more than " + std::to_string(8 * dense.size()) +
                       " bytes of memory to parse (8 per body byte, at least 1048576; at byte offset "),
            std::string::npos)
      << error;
  // Where: about a quarter of the way through the body.
  const size_t offset = std::stoul(error.substr(error.rfind(' ') + 1));
  EXPECT_GT(offset, dense.size() / 6);
  EXPECT_LT(offset, dense.size() / 3);

  // A body as large, of a long string: about one byte per byte, well within.
  const std::string text = R"({"prompt": ")" + std::string(dense.size(), 'x') + R"("})";
  auto parsed = Parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ((*parsed)["prompt"].get_ref<const std::string&>().size(), dense.size());

  // Small bodies have the floor, whatever their shape; a smaller floor refuses them.
  const std::string small = Repeat("[", "{}", 1000, "]");
  EXPECT_TRUE(Parse(small).ok());
  Limits tight;
  tight.min_budget_bytes = 4096;
  EXPECT_NE(ErrorOf(small, tight).find("needs more than 24008 bytes of memory"), std::string::npos)
      << ErrorOf(small, tight);
}

// Records what a diverted member's sink is given.
class RecordingSink : public Sink {
 public:
  void BeginArray(int depth) override { events.push_back("[" + std::to_string(depth)); }
  size_t Add(const Leaf& leaf) override {
    switch (leaf.type) {
      case Leaf::Type::kNull: events.push_back("null"); break;
      case Leaf::Type::kBool: events.push_back(leaf.boolean ? "true" : "false"); break;
      case Leaf::Type::kSigned: events.push_back("i" + std::to_string(leaf.signed_value)); break;
      case Leaf::Type::kUnsigned: events.push_back("u" + std::to_string(leaf.unsigned_value)); break;
      case Leaf::Type::kFloat: events.push_back("f" + std::to_string(leaf.float_value)); break;
      case Leaf::Type::kString: events.push_back("s" + std::string(leaf.string)); break;
      case Leaf::Type::kObject: events.push_back("{}"); break;
    }
    return charge;
  }
  std::vector<std::string> events;
  size_t charge = 0;
};

// Diverts "d" of the objects in the root's "x" array, one sink per diversion.
class XDiverter : public Diverter {
 public:
  Sink* Divert(const std::vector<PathStep>& path, const json& object, absl::string_view key,
               size_t bytes_left) override {
    if (key != "d" || path.size() != 2 || path[0].in_array || path[0].key != "x" || !path[1].in_array) return nullptr;
    seen.push_back({path[1].index, object.contains("before") ? "before" : "", bytes_left});
    sinks.emplace_back(new RecordingSink);
    sinks.back()->charge = charge;
    return sinks.back().get();
  }
  struct Seen {
    size_t index;
    std::string sibling;
    size_t bytes_left;
  };
  std::vector<Seen> seen;
  std::vector<std::unique_ptr<RecordingSink>> sinks;
  size_t charge = 0;
};

TEST(BoundedJson, DivertedMembersReachTheirSinksFlattened) {
  const std::string text =
      R"({"x": [{"before": 1, "d": [[1, -2], [2.5, "\u00e9\n", [true, null]], {"skipped": [[1], {"a": 2}]}, []], "after": 2},)"
      R"( 5, {"d": 7}, {"d": {"o": [1]}, "d": ["again"]}],)"
      R"( "d": [1], "y": {"d": [2]}})";
  XDiverter diverter;
  auto parsed = Parse(text, Limits(), &diverter);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(diverter.sinks.size(), 4u);
  EXPECT_EQ(diverter.sinks[0]->events,
            (std::vector<std::string>{"[0", "[1", "u1", "i-2", "[1", "f2.500000", "s\xc3\xa9\n", "[2", "true", "null",
                                      "{}", "[1"}));
  EXPECT_EQ(diverter.sinks[1]->events, (std::vector<std::string>{"u7"}));   // a scalar as the whole value
  EXPECT_EQ(diverter.sinks[2]->events, (std::vector<std::string>{"{}"}));   // an object as the whole value
  EXPECT_EQ(diverter.sinks[3]->events, (std::vector<std::string>{"[0", "sagain"}));
  // The path's index, the members parsed before the key, and the bytes after it.
  EXPECT_EQ(diverter.seen[0].index, 0u);
  EXPECT_EQ(diverter.seen[0].sibling, "before");
  EXPECT_EQ(diverter.seen[0].bytes_left, text.size() - text.find("\"d\"") - 3);
  EXPECT_EQ(diverter.seen[1].index, 2u);
  EXPECT_EQ(diverter.seen[3].index, 3u);

  // The DOM keeps everything else; a diverted member's place holds the diversion's number, the
  // last of a repeated key winning as in nlohmann's DOM.
  const json& x = (*parsed)["x"];
  EXPECT_EQ(x[0]["after"], 2);
  EXPECT_EQ(x[1], 5);
  ASSERT_TRUE(x[0]["d"].is_binary());
  EXPECT_EQ(x[0]["d"].get_binary().subtype(), 0u);
  EXPECT_EQ(x[2]["d"].get_binary().subtype(), 1u);
  EXPECT_EQ(x[3]["d"].get_binary().subtype(), 3u);
  EXPECT_EQ((*parsed)["d"], json({1}));  // not at the diverter's path: in the DOM
  EXPECT_EQ((*parsed)["y"]["d"], json({2}));
}

TEST(BoundedJson, DivertedValuesCountAgainstTheBudgetAndTheDepth) {
  XDiverter diverter;
  diverter.charge = 1000;  // per leaf
  Limits limits;
  limits.min_budget_bytes = 100000;
  limits.bytes_per_body_byte = 0;
  const std::string many = R"({"x": [{"d": )" + Repeat("[", "0", 200, "]") + "}]}";
  auto parsed = Parse(many, limits, &diverter);
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("needs more than 100000 bytes"), absl::string_view::npos)
      << parsed.status();
  EXPECT_LT(diverter.sinks[0]->events.size(), 120u);  // stopped there

  // Nesting inside a diverted value (and inside its skipped objects) counts.
  XDiverter deep;
  const std::string nested = R"({"x": [{"d": [{"a": )" + std::string(40, '[') + std::string(40, ']') + "}]}]}";
  auto refused = Parse(nested, Limits(), &deep);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("nests deeper than 32 levels"), absl::string_view::npos);
}

}  // namespace
}  // namespace elliptical::server::bounded_json
