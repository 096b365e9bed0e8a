#include "model/layer_stats.h"

namespace elliptical::model {

std::vector<std::vector<LayerStats>> SummariseTrace(const std::vector<LayerTrace>& trace,
                                                    int64_t batch_size) {
  std::vector<std::vector<LayerStats>> out(batch_size);
  for (size_t layer = 0; layer < trace.size(); ++layer) {
    const LayerTrace& t = trace[layer];
    torch::Tensor cosine = t.token_cosine.to(torch::kCPU, torch::kFloat32).contiguous();
    torch::Tensor mean, min, eff;
    if (t.metric.defined()) {
      const double d = static_cast<double>(t.metric.size(-1));
      // Reduce on the device, copy only (B, H) numbers back.
      torch::Tensor sum = t.metric.sum(-1);
      torch::Tensor eff_dev = sum * sum / (t.metric.square().sum(-1) * d);
      mean = t.metric.mean(-1).to(torch::kCPU).contiguous();
      min = t.metric.amin(-1).to(torch::kCPU).contiguous();
      eff = eff_dev.to(torch::kCPU).contiguous();
    }
    for (int64_t b = 0; b < batch_size; ++b) {
      LayerStats s;
      s.layer = static_cast<int>(layer);
      s.elliptical = t.metric.defined();
      s.mean_token_cosine_similarity = cosine[b].item<float>();
      if (s.elliptical) {
        for (int64_t h = 0; h < mean.size(1); ++h) {
          s.heads.push_back({mean[b][h].item<float>(), min[b][h].item<float>(),
                             eff[b][h].item<float>()});
        }
      }
      out[b].push_back(std::move(s));
    }
  }
  return out;
}

}  // namespace elliptical::model
