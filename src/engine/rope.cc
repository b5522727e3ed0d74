#include "engine/rope.h"

#include <cmath>
#include <numbers>
#include <string>

namespace turbine::engine {

namespace {

// Llama 3.1 rule: keep high frequencies, divide low ones by `factor`, interpolate between.
double llama3Scale(double inv_freq, const model::RopeScaling& s) {
  const double old_ctx = s.original_max_position_embeddings;
  const double low_freq_wavelen = old_ctx / s.low_freq_factor;
  const double high_freq_wavelen = old_ctx / s.high_freq_factor;
  const double wavelen = 2.0 * std::numbers::pi / inv_freq;
  if (wavelen < high_freq_wavelen) return inv_freq;
  if (wavelen > low_freq_wavelen) return inv_freq / s.factor;
  const double smooth =
      (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1.0 - smooth) * inv_freq / s.factor + smooth * inv_freq;
}

}  // namespace

std::vector<double> RopeTable::inverseFrequencies(const model::ModelConfig& config) {
  const int32_t half = config.head_dim / 2;
  std::vector<double> inv(static_cast<size_t>(half > 0 ? half : 0));
  for (int32_t i = 0; i < half; ++i) {
    double f = std::pow(static_cast<double>(config.rope_theta),
                        -2.0 * i / static_cast<double>(config.head_dim));
    switch (config.rope_scaling.type) {
      case model::RopeScaling::Type::kNone:
        break;
      case model::RopeScaling::Type::kLinear:
        f /= config.rope_scaling.factor;
        break;
      case model::RopeScaling::Type::kLlama3:
        f = llama3Scale(f, config.rope_scaling);
        break;
    }
    if (!config.rope_scaling.freq_factors.empty()) {
      f /= static_cast<double>(config.rope_scaling.freq_factors[static_cast<size_t>(i)]);
    }
    inv[static_cast<size_t>(i)] = f;
  }
  return inv;
}

Result<RopeTable> RopeTable::create(const model::ModelConfig& config, int32_t max_positions) {
  if (config.head_dim <= 0 || config.head_dim % 2 != 0) {
    return invalidArgument("rope: head_dim must be positive and even, got " +
                           std::to_string(config.head_dim));
  }
  const auto& factors = config.rope_scaling.freq_factors;
  if (!factors.empty() && factors.size() != static_cast<size_t>(config.head_dim / 2)) {
    return invalidArgument("rope: rope_freqs has " + std::to_string(factors.size()) +
                           " factors, expected head_dim / 2 = " +
                           std::to_string(config.head_dim / 2));
  }
  if (max_positions <= 0) {
    return invalidArgument("rope: max positions must be positive, got " +
                           std::to_string(max_positions));
  }
  if (config.rope_scaling.type != model::RopeScaling::Type::kNone &&
      !(config.rope_scaling.factor > 0.0f)) {
    return invalidArgument("rope: rope_scaling.factor must be positive");
  }
  RopeTable t;
  t.style_ = config.rope_style;
  t.head_dim_ = config.head_dim;
  t.max_positions_ = max_positions;
  const std::vector<double> inv = inverseFrequencies(config);
  const size_t half = inv.size();
  t.cos_.resize(static_cast<size_t>(max_positions) * half);
  t.sin_.resize(t.cos_.size());
  for (int32_t p = 0; p < max_positions; ++p) {
    for (size_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * inv[i];
      t.cos_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(angle));
      t.sin_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(angle));
    }
  }
  return t;
}

void RopeTable::apply(float* x, int32_t n_heads, int32_t pos) const {
  const int32_t half = head_dim_ / 2;
  const float* c = cos_.data() + static_cast<size_t>(pos) * half;
  const float* s = sin_.data() + static_cast<size_t>(pos) * half;
  for (int32_t h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<size_t>(h) * head_dim_;
    if (style_ == model::RopeStyle::kHalf) {
      for (int32_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    } else {
      for (int32_t i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c[i] - b * s[i];
        v[2 * i + 1] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace turbine::engine
