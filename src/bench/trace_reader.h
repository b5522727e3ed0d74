// Readers for public LLM-serving request traces:
//  - Mooncake JSONL: one JSON object per line with `timestamp` (ms from the start),
//    `input_length`, `output_length` and `hash_ids` (ids of the prompt's 512-token blocks; an
//    equal id means an identical prefix up to and including that block).
//  - Azure CSV: header `TIMESTAMP,ContextTokens,GeneratedTokens`, TIMESTAMP as
//    `YYYY-MM-DD HH:MM:SS[.fffffff]`; times are made relative to the first row.
// A malformed line is an InvalidArgument that names the file and the 1-based line number.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace turbine::bench {

inline constexpr int32_t kMooncakeBlockTokens = 512;

struct TraceRecord {
  double timestamp_ms = 0.0;  // arrival, relative to the trace start
  int32_t input_length = 0;
  int32_t output_length = 0;
  std::vector<int64_t> hash_ids;  // Mooncake only; empty for Azure
};

enum class TraceFormat { kAuto, kMooncake, kAzure };

// kAuto picks Azure for a `.csv` name, else Mooncake.
Result<std::vector<TraceRecord>> readTrace(const std::string& path,
                                           TraceFormat format = TraceFormat::kAuto);

// Parsers over in-memory text; `name` is used in error messages.
Result<std::vector<TraceRecord>> parseMooncake(const std::string& text, const std::string& name);
Result<std::vector<TraceRecord>> parseAzureCsv(const std::string& text, const std::string& name);

// "2023-11-16 18:15:46.6805900" -> seconds since 1970 (UTC, no leap seconds); error if malformed.
Result<double> parseAzureTimestamp(const std::string& field);

}  // namespace turbine::bench
