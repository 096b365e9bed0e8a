// Every key a config.json may hold, per model family, and a check against it. The parsers read
// their fields with defaults, so a misspelled key ("max_batch_sise") would otherwise be ignored
// without a word and the model would serve with the default; the check turns it into a load
// error that names the key, the file and the likely intended spelling.
//
// The schema lists keys only: the values' types and ranges stay with the parsers that read them
// (vit_config.cc, lm_config.cc, ...). A key added to a parser must be added to FamilyKeys() too;
// tests/model/config_schema_test.cc checks every shipped and generated config against it.
#pragma once

#include <initializer_list>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"
#include "model/config/model_dir.h"

namespace elliptical::model {

// The keys one JSON object may hold. A key maps to the schema of its value when that value is an
// object whose keys are checked too; nullptr (or an empty schema) accepts any value and is not
// descended into.
struct KeySchema {
  std::map<std::string, std::shared_ptr<const KeySchema>> keys;

  // Leaves: keys whose values are not descended into.
  static KeySchema Of(std::initializer_list<std::string> leaves);
  // Adds a key whose value must be an object holding only `child`'s keys.
  KeySchema& With(const std::string& key, KeySchema child);
};

// Every key the model code of `family` reads (model/*_config.cc, config_fields.cc,
// vision_fields.cc, attention_config.cc, model_dir.cc). The server's own sections are not in it:
// see ServingKeys().
KeySchema FamilyKeys(ModelFamily family);

// The sections the server reads from every model's config.json (server/repository/
// serving_config.cc): batching, instances, generation, input_form.
KeySchema ServingKeys();

// Adds `other`'s keys to `into`. A key both hold as objects gets the union of their keys; a key
// either holds as a leaf stays a leaf (any value).
void Merge(const KeySchema& other, KeySchema* into);

// OK when every key of `config`, at every level the schema descends into, is in `schema`; else
// INVALID_ARGUMENT naming the first unknown key by its dotted path, e.g.
//   <file>: unknown key "batching.max_batch_sise"; did you mean "max_batch_size"?
//   (known here: max_batch_size, max_queue_delay_ms, ...)
// The suggestion is the known key nearest in edit distance, when at most 2 edits away. Also
// INVALID_ARGUMENT when a key with a sub-schema holds anything but an object (null included),
// or when `config` itself is not an object. `file` only labels the message.
absl::Status CheckKnownKeys(const nlohmann::json& config, const KeySchema& schema,
                            const std::string& file);

}  // namespace elliptical::model
