// How a caller tells a model that nobody waits for its work any more (every request in the batch
// was cancelled or passed its deadline). Models ask between units of work (before a batch, between
// groups of sliding windows) and then return CANCELLED without finishing, so the time the rest
// would take is not charged to the requests queued behind it. An empty check never stops.
#pragma once

#include <functional>

namespace elliptical::model {

using StopCheck = std::function<bool()>;

inline bool ShouldStop(const StopCheck& stop) { return stop && stop(); }

}  // namespace elliptical::model
