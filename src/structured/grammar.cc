#include "structured/grammar.h"

#include <algorithm>
#include <utility>

namespace turbine::structured {
namespace {

// `nullable` (derives the empty string) and `productive` (derives some finite string), by
// propagation from the rules known to have them: linear in the grammar's size (a fixpoint of
// passes over the rules would be quadratic on long chains of rules, which a grammar text can
// spell).
void analyse(const std::vector<std::vector<std::vector<Symbol>>>& alts, std::vector<char>* nullable,
             std::vector<char>* productive) {
  const size_t n = alts.size();
  nullable->assign(n, 0);
  productive->assign(n, 0);
  struct Alt {
    int32_t rule;
    int32_t unproductive;  // rule symbols not yet known productive
    int32_t unnullable;    // rule symbols not yet known nullable; -1: has a byte, never nullable
  };
  std::vector<Alt> all;
  std::vector<std::vector<int32_t>> uses(n);  // rule -> alternatives with one occurrence each
  for (size_t r = 0; r < n; ++r) {
    for (const auto& alt : alts[r]) {
      Alt a{static_cast<int32_t>(r), 0, 0};
      for (const Symbol& s : alt) {
        if (s.kind == Symbol::Kind::kBytes) {
          a.unnullable = -1;
        } else {
          ++a.unproductive;
          if (a.unnullable >= 0) ++a.unnullable;
          uses[s.id].push_back(static_cast<int32_t>(all.size()));
        }
      }
      all.push_back(a);
    }
  }
  std::vector<int32_t> newly_productive, newly_nullable;
  auto check = [&](const Alt& a) {
    if (a.unproductive == 0 && !(*productive)[a.rule]) (*productive)[a.rule] = 1, newly_productive.push_back(a.rule);
    if (a.unnullable == 0 && !(*nullable)[a.rule]) (*nullable)[a.rule] = 1, newly_nullable.push_back(a.rule);
  };
  for (const Alt& a : all) check(a);
  while (!newly_productive.empty() || !newly_nullable.empty()) {
    if (!newly_productive.empty()) {
      const int32_t r = newly_productive.back();
      newly_productive.pop_back();
      for (int32_t k : uses[r]) --all[k].unproductive, check(all[k]);
    } else {
      const int32_t r = newly_nullable.back();
      newly_nullable.pop_back();
      for (int32_t k : uses[r]) {
        if (all[k].unnullable > 0) --all[k].unnullable, check(all[k]);
      }
    }
  }
}

// A rule reachable from `r` without consuming a byte that is on the DFS stack: left recursion.
// Returns the rule closing the cycle, or -1.
int32_t findLeftCycle(const std::vector<std::vector<int32_t>>& edges) {
  const size_t n = edges.size();
  std::vector<char> color(n, 0);  // 0 new, 1 on stack, 2 done
  std::vector<std::pair<int32_t, size_t>> stack;
  for (size_t start = 0; start < n; ++start) {
    if (color[start]) continue;
    stack.push_back({static_cast<int32_t>(start), 0});
    color[start] = 1;
    while (!stack.empty()) {
      auto& [r, next] = stack.back();
      if (next < edges[r].size()) {
        const int32_t to = edges[r][next++];
        if (color[to] == 1) return to;
        if (color[to] == 0) {
          color[to] = 1;
          stack.push_back({to, 0});
        }
      } else {
        color[r] = 2;
        stack.pop_back();
      }
    }
  }
  return -1;
}

}  // namespace

int32_t GrammarBuilder::addRule(std::string name) {
  alts_.emplace_back();
  names_.push_back(std::move(name));
  return static_cast<int32_t>(alts_.size()) - 1;
}

void GrammarBuilder::addAlternative(int32_t rule, std::vector<Symbol> symbols) {
  alts_[rule].push_back(std::move(symbols));
}

Symbol GrammarBuilder::bytes(const ByteSet& set) {
  uint64_t h = 0;
  for (uint64_t w : set.bits) h = (h ^ w) * 0x9e3779b97f4a7c15ull;
  auto [it, fresh] = class_ids_.try_emplace(h, std::vector<int32_t>{});
  for (int32_t id : it->second) {
    if (classes_[id] == set) return {Symbol::Kind::kBytes, id};
  }
  classes_.push_back(set);
  const auto id = static_cast<int32_t>(classes_.size()) - 1;
  it->second.push_back(id);
  return {Symbol::Kind::kBytes, id};
}

void GrammarBuilder::appendLiteral(std::string_view text, std::vector<Symbol>* out) {
  for (char c : text) out->push_back(byte(static_cast<uint8_t>(c)));
}

void GrammarBuilder::removeDirectLeftRecursion() {
  const int32_t n = numRules();
  auto recursive = [](const std::vector<Symbol>& alt, int32_t r) {
    return !alt.empty() && alt.front().kind == Symbol::Kind::kRule && alt.front().id == r;
  };
  for (int32_t r = 0; r < n; ++r) {
    if (std::none_of(alts_[r].begin(), alts_[r].end(), [&](const auto& alt) { return recursive(alt, r); })) continue;
    std::vector<std::vector<Symbol>> base, tails;
    for (auto& alt : alts_[r]) {
      if (recursive(alt, r)) {
        if (alt.size() > 1) tails.emplace_back(alt.begin() + 1, alt.end());  // `r ::= r` adds nothing
      } else {
        base.push_back(std::move(alt));
      }
    }
    // r ::= r a | b   ==   r ::= b t ;  t ::= a t | ""
    const int32_t t = addRule(names_[r] + "_tail");
    for (auto& alt : tails) {
      alt.push_back(rule(t));
      alts_[t].push_back(std::move(alt));
    }
    alts_[t].emplace_back();
    for (auto& alt : base) alt.push_back(rule(t));
    alts_[r] = std::move(base);
  }
}

Result<Grammar> GrammarBuilder::build(int32_t root) && {
  if (root < 0 || root >= numRules()) return invalidArgument("grammar: no root rule");
  removeDirectLeftRecursion();
  std::vector<char> nullable, productive;
  analyse(alts_, &nullable, &productive);
  if (!productive[root]) return invalidArgument("grammar: it matches no string at all");
  // Edges r -> s where s can start r's match without a byte consumed before it.
  std::vector<std::vector<int32_t>> edges(alts_.size());
  for (size_t r = 0; r < alts_.size(); ++r) {
    for (const auto& alt : alts_[r]) {
      for (const Symbol& s : alt) {
        if (s.kind == Symbol::Kind::kBytes) break;
        edges[r].push_back(s.id);
        if (!nullable[s.id]) break;
      }
    }
  }
  if (const int32_t bad = findLeftCycle(edges); bad >= 0) {
    return invalidArgument("grammar: '" + names_[bad] +
                           "' refers to itself without matching anything first (left recursion)");
  }
  Grammar g;
  g.root_ = root;
  g.classes_ = std::move(classes_);
  g.names_ = std::move(names_);
  g.alts_.resize(alts_.size());
  for (size_t r = 0; r < alts_.size(); ++r) {
    for (const auto& alt : alts_[r]) {
      // Alternatives through unproductive rules can never complete: drop them.
      bool dead = false;
      for (const Symbol& s : alt) dead = dead || (s.kind == Symbol::Kind::kRule && !productive[s.id]);
      if (dead) continue;
      g.alts_[r].push_back(static_cast<int32_t>(g.elems_.size()));
      for (const Symbol& s : alt) {
        g.elems_.push_back(s.kind == Symbol::Kind::kBytes ? s.id : Grammar::ruleElement(s.id));
      }
      g.elems_.push_back(Grammar::kEnd);
    }
  }
  return g;
}

}  // namespace turbine::structured
