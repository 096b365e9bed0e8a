// Reduces the tensors a forward pass traced into the plain per-input statistics that leave the
// model (attention_stats.h). Shared by every model family that traces its layers.
#pragma once

#include <vector>

#include "model/api/attention_stats.h"
#include "model/nets/vit.h"

namespace elliptical::model {

// Returns [sample][layer] statistics for a batch of `batch_size`.
std::vector<std::vector<LayerStats>> SummariseTrace(const std::vector<LayerTrace>& trace,
                                                    int64_t batch_size);

// Averages [item][layer] statistics over items (the windows of one segmented image); the
// histograms of m and their sums add up instead.
std::vector<LayerStats> AverageOverBatch(const std::vector<std::vector<LayerStats>>& stats);

}  // namespace elliptical::model
