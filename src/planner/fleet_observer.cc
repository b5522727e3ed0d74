#include "planner/fleet_observer.h"

#include "common/prometheus_text.h"

namespace turbine::planner {

Result<FrontendSnapshot> parseFrontendMetrics(std::string_view text, const std::string& model) {
  TURBINE_ASSIGN_OR_RETURN(auto samples, parsePrometheusText(text));
  for (const char* required : {"turbine_requests_admitted_total", "turbine_time_to_first_token_seconds_count"}) {
    if (!hasSample(samples, required)) {
      return notFound(std::string("no ") + required + " in the metrics: not a turbine frontend?");
    }
  }
  std::vector<std::pair<std::string, std::string>> of_model;
  if (!model.empty()) of_model.emplace_back("model", model);
  FrontendSnapshot s;
  s.admitted = sumSamples(samples, "turbine_requests_admitted_total");
  s.refused = sumSamples(samples, "turbine_requests_refused_total");
  s.prompt_tokens = sumSamples(samples, "turbine_prompt_tokens_total");
  s.generation_tokens = sumSamples(samples, "turbine_generation_tokens_total");
  s.ttft_sum_s = sumSamples(samples, "turbine_time_to_first_token_seconds_sum");
  s.ttft_count = sumSamples(samples, "turbine_time_to_first_token_seconds_count");
  s.itl_sum_s = sumSamples(samples, "turbine_inter_token_latency_seconds_sum");
  s.itl_count = sumSamples(samples, "turbine_inter_token_latency_seconds_count");
  s.waiting = sumSamples(samples, "turbine_num_requests_waiting");
  s.workers = sumSamples(samples, "turbine_fleet_workers", of_model);
  s.prefill_workers = sumSamples(samples, "turbine_fleet_prefill_workers", of_model);
  return s;
}

Observation observationBetween(const FrontendSnapshot& before_in, const FrontendSnapshot& after,
                               double interval_s, FleetMode mode) {
  // A restarted frontend starts its counters again: measure from zero.
  const FrontendSnapshot before = after.admitted < before_in.admitted ? FrontendSnapshot{} : before_in;
  const double nan = kNotMeasured;
  Observation o;
  o.interval_s = interval_s;
  const double admitted = after.admitted - before.admitted;
  o.requests = admitted + std::max(after.refused - before.refused, 0.0);
  if (admitted > 0) {
    o.mean_input_tokens = (after.prompt_tokens - before.prompt_tokens) / admitted;
    o.mean_output_tokens = (after.generation_tokens - before.generation_tokens) / admitted;
  }
  const double ttft_n = after.ttft_count - before.ttft_count;
  const double itl_n = after.itl_count - before.itl_count;
  o.mean_ttft_ms = ttft_n > 0 ? (after.ttft_sum_s - before.ttft_sum_s) / ttft_n * 1e3 : nan;
  o.mean_itl_ms = itl_n > 0 ? (after.itl_sum_s - before.itl_sum_s) / itl_n * 1e3 : nan;
  o.waiting = after.waiting;
  if (mode == FleetMode::kAgg) {
    o.serving.agg = static_cast<int32_t>(after.workers);
  } else {
    o.serving.decode = static_cast<int32_t>(after.workers);
    o.serving.prefill = static_cast<int32_t>(after.prefill_workers);
  }
  return o;
}

Observation observationOf(const mocker::IntervalStats& st) {
  Observation o;
  o.interval_s = st.interval_s;
  o.requests = static_cast<double>(st.arrivals);
  o.mean_input_tokens = st.mean_input_tokens;
  o.mean_output_tokens = st.mean_output_tokens;
  o.cached_fraction = st.cached_fraction;
  o.mean_ttft_ms = st.mean_ttft_ms;
  o.mean_itl_ms = st.mean_itl_ms;
  o.waiting = static_cast<double>(st.waiting + st.prefill_waiting);
  if (st.disaggregated) {
    o.serving.decode = st.serving;
    o.serving.prefill = st.prefill_serving;
  } else {
    o.serving.agg = st.serving;
  }
  return o;
}

}  // namespace turbine::planner
