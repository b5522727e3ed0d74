// Grammar: a context-free grammar over bytes, the form every structured-output constraint
// (JSON schema, choice, regex, grammar text) is compiled into before generation (docs/design.md
// "Structured output"). Rules have ordered alternatives; an alternative is a sequence of symbols,
// each a byte class or another rule. GrammarBuilder checks what the Matcher relies on: every rule
// can derive some string, and no rule reaches itself without consuming a byte (no left recursion:
// the direct kind, `expr -> expr "+" term | term`, is first rewritten into right recursion).
// A Grammar is immutable once built and safe to share between threads.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"

namespace turbine::structured {

// A set of byte values.
struct ByteSet {
  uint64_t bits[4] = {0, 0, 0, 0};

  bool has(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
  ByteSet& add(uint8_t b) {
    bits[b >> 6] |= uint64_t{1} << (b & 63);
    return *this;
  }
  ByteSet& addRange(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) add(static_cast<uint8_t>(b));
    return *this;
  }
  ByteSet& addAll(const ByteSet& o) {
    for (int i = 0; i < 4; ++i) bits[i] |= o.bits[i];
    return *this;
  }
  ByteSet complement() const {
    ByteSet c;
    for (int i = 0; i < 4; ++i) c.bits[i] = ~bits[i];
    return c;
  }
  bool empty() const { return (bits[0] | bits[1] | bits[2] | bits[3]) == 0; }
  bool operator==(const ByteSet&) const = default;

  static ByteSet of(uint8_t b) { return ByteSet().add(b); }
  static ByteSet range(uint8_t lo, uint8_t hi) { return ByteSet().addRange(lo, hi); }
};

// One symbol of an alternative.
struct Symbol {
  enum class Kind : uint8_t { kBytes, kRule };
  Kind kind = Kind::kBytes;
  int32_t id = 0;  // a byte class id or a rule id
};

class Grammar {
 public:
  // The flat encoding the Matcher walks: element >= 0 is a byte class id, kEnd ends an
  // alternative, any other negative value is a rule (ruleOf()).
  static constexpr int32_t kEnd = -1;
  static bool isRule(int32_t e) { return e < kEnd; }
  static int32_t ruleOf(int32_t e) { return -e - 2; }
  static int32_t ruleElement(int32_t rule) { return -rule - 2; }

  int32_t root() const { return root_; }
  int32_t numRules() const { return static_cast<int32_t>(alts_.size()); }
  int32_t elem(int32_t pos) const { return elems_[pos]; }
  const ByteSet& byteClass(int32_t id) const { return classes_[id]; }
  // Start positions (in the flat encoding) of the rule's alternatives.
  std::span<const int32_t> alternatives(int32_t rule) const { return alts_[rule]; }
  const std::string& ruleName(int32_t rule) const { return names_[rule]; }
  size_t numElements() const { return elems_.size(); }

 private:
  friend class GrammarBuilder;
  int32_t root_ = 0;
  std::vector<int32_t> elems_;
  std::vector<ByteSet> classes_;
  std::vector<std::vector<int32_t>> alts_;
  std::vector<std::string> names_;
};

class GrammarBuilder {
 public:
  // A new rule with no alternatives yet (alternatives may refer to rules added later).
  int32_t addRule(std::string name);
  void addAlternative(int32_t rule, std::vector<Symbol> symbols);

  Symbol bytes(const ByteSet& set);  // byte classes are interned
  Symbol byte(uint8_t b) { return bytes(ByteSet::of(b)); }
  static Symbol rule(int32_t r) { return {Symbol::Kind::kRule, r}; }
  // The symbols matching exactly `text`, appended to `out`.
  void appendLiteral(std::string_view text, std::vector<Symbol>* out);
  int32_t numRules() const { return static_cast<int32_t>(alts_.size()); }

  // Rewrites direct left recursion (`r -> r a | b` into `r -> b t, t -> a t | ""`), then
  // InvalidArgument when the root derives nothing, or a rule reaches itself without consuming a
  // byte (names the rule). Rules that derive nothing are allowed elsewhere (they never match).
  Result<Grammar> build(int32_t root) &&;

 private:
  void removeDirectLeftRecursion();

  std::vector<ByteSet> classes_;
  std::unordered_map<uint64_t, std::vector<int32_t>> class_ids_;  // hash -> interned classes
  std::vector<std::vector<std::vector<Symbol>>> alts_;
  std::vector<std::string> names_;
};

}  // namespace turbine::structured
