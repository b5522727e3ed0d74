#include "bench/prompt.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace turbine::bench {

uint64_t unitHash(uint64_t key, uint32_t index, uint64_t seed) {
  // splitmix64 finaliser over a combination of the three inputs.
  uint64_t z = key * 0x9E3779B97F4A7C15ULL + (static_cast<uint64_t>(index) << 1 | 1) * 0xBF58476D1CE4E5B9ULL +
               seed * 0x94D049BB133111EBULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

PromptRenderer::PromptRenderer(PromptOptions options) : options_(std::move(options)) {
  if (options_.token_pool.empty()) {
    for (int32_t id = 1000; id < 21000; ++id) options_.token_pool.push_back(id);
  }
  if (options_.words.empty()) options_.words = defaultWords();
}

std::vector<int32_t> PromptRenderer::tokens(const std::vector<PromptSegment>& segments) const {
  std::vector<int32_t> out;
  size_t total = 0;
  for (const auto& s : segments) total += static_cast<size_t>(std::max(0, s.count));
  out.reserve(total);
  const uint64_t n = options_.token_pool.size();
  for (const auto& s : segments) {
    for (int32_t i = 0; i < s.count; ++i) {
      out.push_back(options_.token_pool[unitHash(s.key, static_cast<uint32_t>(i), options_.seed) % n]);
    }
  }
  return out;
}

std::string PromptRenderer::text(const std::vector<PromptSegment>& segments) const {
  std::string out;
  const uint64_t n = options_.words.size();
  for (const auto& s : segments) {
    for (int32_t i = 0; i < s.count; ++i) {
      if (!out.empty()) out.push_back(' ');
      out += options_.words[unitHash(s.key, static_cast<uint32_t>(i), options_.seed) % n];
    }
  }
  return out;
}

std::string PromptRenderer::body(const RequestSpec& spec) const {
  nlohmann::json j;
  j["model"] = options_.model;
  if (options_.endpoint == Endpoint::kChat) {
    nlohmann::json msgs = nlohmann::json::array();
    for (const auto& m : spec.history) msgs.push_back({{"role", m.role}, {"content", m.content}});
    msgs.push_back({{"role", "user"}, {"content", text(spec.segments)}});
    j["messages"] = std::move(msgs);
  } else if (options_.mode == PromptMode::kTokenIds) {
    j["prompt"] = tokens(spec.segments);
  } else {
    std::vector<PromptSegment> segs = spec.segments;
    for (int32_t drop = options_.special_tokens; drop > 0 && !segs.empty();) {
      const int32_t k = std::min(drop, segs.back().count - (segs.size() == 1 ? 1 : 0));
      segs.back().count -= k;
      drop -= k;
      if (segs.back().count == 0) segs.pop_back();
      if (k == 0) break;
    }
    j["prompt"] = text(segs);
  }
  j["max_tokens"] = spec.output_tokens;
  if (options_.ignore_eos) {
    j["ignore_eos"] = true;
    j["min_tokens"] = spec.output_tokens;
  }
  j["stream"] = true;
  j["stream_options"] = {{"include_usage", true}};
  // Replace, not throw, on invalid UTF-8 (an earlier reply cut inside a character).
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> PromptRenderer::defaultWords() {
  static const char* const kWords[] = {
      "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
      "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
      "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
      "been", "if", "more", "when", "will", "would", "who", "so", "no", "she", "other", "its",
      "may", "these", "about", "them", "than", "some", "him", "time", "into", "only", "do",
      "could", "new", "then", "two", "first", "any", "like", "my", "now", "over", "such", "our",
      "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must",
      "through", "years", "where", "much", "your", "way", "well", "down", "should", "because",
      "each", "just", "those", "people", "how", "too", "little", "state", "good", "very", "make",
      "world", "still", "own", "see", "men", "work", "long", "get", "here", "between", "both",
      "life", "being", "under", "never", "day", "same", "another", "know", "while", "last",
      "might", "us", "great", "old", "year", "off", "come", "since", "against", "go", "came",
      "right", "used", "take", "three", "himself", "few", "house", "use", "during", "without",
      "again", "place", "around", "however", "home", "small", "found", "thought", "went", "say",
      "part", "once", "general", "high", "upon", "school", "every", "does", "got", "united",
      "left", "number", "course", "war", "until", "always", "away", "something", "fact",
      "though", "water", "less", "public", "put", "think", "almost", "hand", "enough", "far",
      "took", "head", "yet", "government", "system", "better", "set", "told", "nothing", "night",
      "end", "why", "called", "didn", "eyes", "find", "going", "look", "asked", "later", "knew",
      "point", "next", "program", "city", "business", "give", "group", "toward", "young", "days",
      "let", "room", "president", "side", "social", "given", "present", "several", "order",
      "national", "possible", "rather", "second", "face", "per", "among", "form", "important",
      "often", "things", "looked", "early", "white", "case", "john", "become", "large", "big",
      "need", "four", "within", "felt", "along", "children", "saw", "best", "church", "ever",
      "least", "power", "development", "light", "thing", "seemed", "family", "interest", "want"};
  return {std::begin(kWords), std::end(kWords)};
}

}  // namespace turbine::bench
