#include "mocker/timing_model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

namespace turbine::mocker {

namespace {

double pairs(double start, double n) { return n * (start + n / 2.0); }

}  // namespace

double prefillTimeUs(const TimingProfile& p, int64_t cached_tokens, int64_t new_tokens) {
  if (new_tokens <= 0) return 0.0;
  const auto n = static_cast<double>(new_tokens);
  return (p.step_base_us + p.prefill_us_per_token * n +
          p.attention_us_per_pair * pairs(static_cast<double>(cached_tokens), n)) /
         p.speedup;
}

double decodeStepTimeUs(const TimingProfile& p, int64_t batch_size, int64_t total_context) {
  if (batch_size <= 0) return 0.0;
  return (p.step_base_us + p.decode_us_per_seq * static_cast<double>(batch_size) +
          p.kv_read_us_per_token * static_cast<double>(total_context)) /
         p.speedup;
}

double stepTimeUs(const TimingProfile& p, const engine::Batch& batch) {
  if (batch.seqs.empty()) return 0.0;
  double us = p.step_base_us;
  for (const auto& s : batch.seqs) {
    const auto n = static_cast<double>(s.tokens.size());
    const auto start = static_cast<double>(s.start_pos);
    if (s.tokens.size() == 1 && s.start_pos > 0) {  // a decode
      us += p.decode_us_per_seq + p.kv_read_us_per_token * (start + 1);
    } else {
      us += p.prefill_us_per_token * n + p.attention_us_per_pair * pairs(start, n);
    }
  }
  return us / p.speedup;
}

double isolatedPrefillUs(const TimingProfile& p, int64_t cached_tokens, int64_t new_tokens) {
  const int64_t chunk_max = std::max<int64_t>(p.max_num_batched_tokens, 1);
  double us = 0;
  for (int64_t done = 0; done < new_tokens;) {
    const int64_t n = std::min(chunk_max, new_tokens - done);
    const auto start = static_cast<double>(cached_tokens + done);
    us += p.step_base_us;
    if (n == 1 && start > 0) {
      us += p.decode_us_per_seq + p.kv_read_us_per_token * (start + 1);
    } else {
      us += p.prefill_us_per_token * static_cast<double>(n) +
            p.attention_us_per_pair * pairs(start, static_cast<double>(n));
    }
    done += n;
  }
  return us / p.speedup;
}

Status validateTimingProfile(const TimingProfile& p) {
  const std::pair<const char*, double> fields[] = {
      {"step_base_us", p.step_base_us},
      {"prefill_us_per_token", p.prefill_us_per_token},
      {"attention_us_per_pair", p.attention_us_per_pair},
      {"decode_us_per_seq", p.decode_us_per_seq},
      {"kv_read_us_per_token", p.kv_read_us_per_token},
      {"onboard_us_per_token", p.onboard_us_per_token}};
  for (const auto& [name, v] : fields) {
    if (!std::isfinite(v) || v < 0) return invalidArgument(std::string(name) + " must be a finite number >= 0");
  }
  if (!std::isfinite(p.speedup) || p.speedup <= 0) return invalidArgument("speedup must be > 0");
  if (p.max_num_batched_tokens < 1) return invalidArgument("max_num_batched_tokens must be >= 1");
  if (p.max_num_seqs < 1) return invalidArgument("max_num_seqs must be >= 1");
  return Status::ok();
}

Result<TimingProfile> parseTimingProfile(const std::string& json_text, const std::string& source) {
  TimingProfile p;
  try {
    const auto j = nlohmann::json::parse(json_text);
    if (!j.is_object()) return invalidArgument(source + ": the profile must be a JSON object");
    for (const auto& [key, value] : j.items()) {
      double* d = key == "step_base_us"            ? &p.step_base_us
                  : key == "prefill_us_per_token"  ? &p.prefill_us_per_token
                  : key == "attention_us_per_pair" ? &p.attention_us_per_pair
                  : key == "decode_us_per_seq"     ? &p.decode_us_per_seq
                  : key == "kv_read_us_per_token"  ? &p.kv_read_us_per_token
                  : key == "onboard_us_per_token"  ? &p.onboard_us_per_token
                  : key == "speedup"               ? &p.speedup
                                                   : nullptr;
      int32_t* i = key == "max_num_batched_tokens" ? &p.max_num_batched_tokens
                   : key == "max_num_seqs"         ? &p.max_num_seqs
                                                   : nullptr;
      if (d == nullptr && i == nullptr) return invalidArgument(source + ": unknown key '" + key + "'");
      if (!value.is_number()) return invalidArgument(source + ": '" + key + "' must be a number");
      if (d) *d = value.get<double>();
      if (i) *i = value.get<int32_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    return invalidArgument(source + ": invalid JSON: " + e.what());
  }
  Status st = validateTimingProfile(p);
  if (!st) return st.withPrefix(source);
  return p;
}

Result<TimingProfile> loadTimingProfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return notFound("cannot open timing profile '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parseTimingProfile(ss.str(), path);
}

}  // namespace turbine::mocker
