#include "model/nets/layer_stats.h"

namespace elliptical::model {

std::vector<std::vector<LayerStats>> SummariseTrace(const std::vector<LayerTrace>& trace,
                                                    int64_t batch_size) {
  std::vector<std::vector<LayerStats>> out(batch_size);
  for (size_t layer = 0; layer < trace.size(); ++layer) {
    const LayerTrace& t = trace[layer];
    torch::Tensor cosine = t.token_cosine.to(torch::kCPU, torch::kFloat32).contiguous();
    torch::Tensor mean, min, eff, histogram, total;
    if (t.metric.defined()) {
      // Bin every entry of m on the device; only (B, bins) counts travel.
      torch::Tensor flat = t.metric.reshape({t.metric.size(0), -1});
      torch::Tensor bins = (flat * kMetricBins).ceil().clamp(1, kMetricBins).to(torch::kInt64) - 1;
      histogram = torch::zeros({flat.size(0), kMetricBins}, flat.options())
                      .scatter_add_(1, bins, torch::ones_like(flat))
                      .to(torch::kCPU)
                      .contiguous();
      total = flat.sum(1).to(torch::kCPU).contiguous();
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
        const float* counts = histogram[b].data_ptr<float>();
        s.metric_histogram.assign(counts, counts + kMetricBins);
        s.metric_sum = total[b].item<float>();
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

std::vector<LayerStats> AverageOverBatch(const std::vector<std::vector<LayerStats>>& stats) {
  if (stats.empty()) return {};
  std::vector<LayerStats> mean = stats.front();
  const float n = static_cast<float>(stats.size());
  for (size_t item = 1; item < stats.size(); ++item) {
    for (size_t l = 0; l < mean.size(); ++l) {
      mean[l].mean_token_cosine_similarity += stats[item][l].mean_token_cosine_similarity;
      // Counts add up: the image's histogram covers every window's entries.
      for (size_t i = 0; i < mean[l].metric_histogram.size(); ++i) {
        mean[l].metric_histogram[i] += stats[item][l].metric_histogram[i];
      }
      mean[l].metric_sum += stats[item][l].metric_sum;
      for (size_t h = 0; h < mean[l].heads.size(); ++h) {
        const HeadMetricStats& add = stats[item][l].heads[h];
        mean[l].heads[h].mean += add.mean;
        mean[l].heads[h].min += add.min;
        mean[l].heads[h].effective_dimension += add.effective_dimension;
      }
    }
  }
  for (LayerStats& layer : mean) {
    layer.mean_token_cosine_similarity /= n;
    for (HeadMetricStats& h : layer.heads) {
      h.mean /= n;
      h.min /= n;
      h.effective_dimension /= n;
    }
  }
  return mean;
}

}  // namespace elliptical::model
