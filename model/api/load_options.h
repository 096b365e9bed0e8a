// How the server asks every model to be placed, over what its config.json says.
#pragma once

#include <string>

namespace elliptical::model {

struct LoadOptions {
  // Overrides the config's device / dtype when non-empty ("cpu", "cuda:0", "auto"; "float32", ...).
  std::string device;
  std::string dtype;
};

}  // namespace elliptical::model
