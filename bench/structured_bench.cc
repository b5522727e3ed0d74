// Structured output: the cost of a token mask (one per generated token of a constrained
// request) on real vocabularies, at the states a JSON answer passes through. The limit it is
// measured against: the decode step it is added to (docs/benchmarks.md "Structured output").
//   build/bench/structured_bench [--benchmark_filter=...]
// Vocabularies come from ../shared/data/tokenizers (skipped when absent).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/guided.h"
#include "model/gguf.h"
#include "model/tokenizer.h"
#include "structured/constraint.h"
#include "structured/matcher.h"
#include "structured/token_trie.h"

namespace {

using namespace turbine;

std::string sharedDir() {
  const char* env = std::getenv("TURBINE_SHARED_DIR");
  return env ? env : std::string(TURBINE_SOURCE_DIR) + "/../shared";
}

std::shared_ptr<const structured::TokenTrie> loadTrie(const std::string& name) {
  const std::string path = sharedDir() + "/data/tokenizers/ggml-vocab-" + name + ".gguf";
  if (!std::filesystem::exists(path)) return nullptr;
  auto gguf = model::GgufFile::open(path);
  if (!gguf.isOk()) return nullptr;
  auto tok = model::Tokenizer::fromGguf(*gguf);
  if (!tok.isOk()) return nullptr;
  return engine::tokenTrieFor(**tok, (*tok)->vocabSize());  // what serve and worker build
}

// A small object schema, and Lark's JSON grammar (vLLM's documented example, with %ignore WS: the
// same answers reach the same states through a grammar text).
const structured::OutputConstraint kSchema{structured::OutputConstraint::Kind::kJsonSchema,
                                           R"({"type": "object", "properties": {"name": {"type": "string"},
           "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
           "required": ["name", "age", "tags"]})"};
const structured::OutputConstraint kLarkJson{structured::OutputConstraint::Kind::kGrammar, R"(
?start: value
?value: dict | list | string | SIGNED_NUMBER | "true" | "false" | "null"
list : "[" [value ("," value)*] "]"
dict : "{" [pair ("," pair)*] "}"
pair : string ":" value
string : ESCAPED_STRING
%import common.ESCAPED_STRING
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
)"};

// The mask after `prefix` of an answer under `constraint`.
void BM_FillMask(benchmark::State& state, const std::string& vocab, const std::string& prefix,
                 bool cached, const structured::OutputConstraint& constraint) {
  static std::map<std::string, std::shared_ptr<const structured::TokenTrie>> tries;
  if (!tries.count(vocab)) tries[vocab] = loadTrie(vocab);
  const auto trie = tries[vocab];
  if (!trie) {
    state.SkipWithError("vocabulary not found (../shared/data/tokenizers)");
    return;
  }
  auto grammar = structured::compileConstraint(constraint);
  if (!grammar.isOk()) {
    state.SkipWithError(grammar.status().message().c_str());
    return;
  }
  structured::Matcher m(*grammar);
  if (!m.advance(prefix)) {
    state.SkipWithError("prefix rejected");
    return;
  }
  std::vector<uint64_t> mask((static_cast<size_t>(trie->vocabSize()) + 63) / 64);
  int64_t allowed = 0;
  structured::MaskCache cache;
  for (auto _ : state) {
    std::fill(mask.begin(), mask.end(), 0);
    m.fillMask(*trie, mask, cached ? &cache : nullptr);
    benchmark::DoNotOptimize(mask.data());
  }
  for (uint64_t w : mask) allowed += __builtin_popcountll(w);
  state.counters["vocab"] = trie->vocabSize();
  state.counters["trie_nodes"] = static_cast<double>(trie->nodes().size());
  state.counters["allowed"] = static_cast<double>(allowed);
}

// Compiling a realistic schema (what the frontend's and the engine's ConstraintCache save for
// each request of a schema seen before).
void BM_CompileSchema(benchmark::State& state) {
  const structured::OutputConstraint c{structured::OutputConstraint::Kind::kJsonSchema, R"({
      "type": "object", "properties": {
        "name": {"type": "string", "maxLength": 64}, "age": {"type": "integer"},
        "birthday": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 8},
        "address": {"type": "object", "properties": {"street": {"type": "string"},
          "city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
          "required": ["city"]}},
      "required": ["name", "age"]})"};
  for (auto _ : state) {
    auto g = structured::compileConstraint(c);
    if (!g.isOk()) state.SkipWithError("schema does not compile");
    benchmark::DoNotOptimize(g);
  }
}
BENCHMARK(BM_CompileSchema)->Unit(benchmark::kMicrosecond);

// Compiling grammar texts: Lark's JSON grammar (with common.lark's terminals) and a GBNF one.
void BM_CompileGrammar(benchmark::State& state, const std::string& text) {
  const structured::OutputConstraint c{structured::OutputConstraint::Kind::kGrammar, text};
  for (auto _ : state) {
    auto g = structured::compileConstraint(c);
    if (!g.isOk()) state.SkipWithError("grammar does not compile");
    benchmark::DoNotOptimize(g);
  }
}
BENCHMARK_CAPTURE(BM_CompileGrammar, lark_json, kLarkJson.spec)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_CompileGrammar, gbnf_list, std::string(R"(root ::= "- " item ("\n- " item){0,9}
item ::= [A-Za-z] [a-z ]{0,40} ("." | "!")?
)"))->Unit(benchmark::kMicrosecond);

// A long chain of rules, each with its own character class, defined root first: what a grammar
// text can spell to make a compiler quadratic (the rule analysis, the class interning).
std::string hex4(int v) {
  char b[8];
  std::snprintf(b, sizeof b, "%04x", v);
  return b;
}
std::string chainGrammar(int n) {
  std::string text = "root ::= r0\n";
  for (int i = 0; i < n; ++i) {
    const int lo = i % 100, hi = 100 + (i / 100) % 27;  // 2,700 distinct byte classes
    text += "r" + std::to_string(i) + " ::= [\\u" + hex4(lo) + "-\\u" + hex4(hi) + "] r" + std::to_string(i + 1) + "\n";
  }
  text += "r" + std::to_string(n) + " ::= \"end\"\n";
  return text;
}
BENCHMARK_CAPTURE(BM_CompileGrammar, chain_20k, chainGrammar(20000))->Unit(benchmark::kMillisecond);

const char* kStates[][2] = {
    {"start", ""},
    {"key", "{\"name\": \"Ada\", "},
    {"in_string", "{\"name\": \"Ada Lov"},
    {"in_number", "{\"name\": \"Ada\", \"age\": 3"},
};

int registerAll() {
  for (const char* vocab : {"gpt-2", "deepseek-llm", "llama-spm"}) {
    for (const auto& s : kStates) {
      for (bool cached : {false, true}) {
        benchmark::RegisterBenchmark(
            (std::string("BM_FillMask/") + vocab + "/" + s[0] + (cached ? "/cached" : "/walk")).c_str(),
            BM_FillMask, std::string(vocab), std::string(s[1]), cached, kSchema)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  for (const auto& s : kStates) {  // the same states through the Lark grammar
    for (bool cached : {false, true}) {
      benchmark::RegisterBenchmark(
          (std::string("BM_FillMask/gpt-2/lark_json/") + s[0] + (cached ? "/cached" : "/walk")).c_str(),
          BM_FillMask, std::string("gpt-2"), std::string(s[1]), cached, kLarkJson)
          ->Unit(benchmark::kMicrosecond);
    }
  }
  return 0;
}
const int kRegistered = registerAll();

}  // namespace

BENCHMARK_MAIN();
