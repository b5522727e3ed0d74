// The BPE merge loop (see tokenizer_bpe.h for the two merge orders).
#include "model/tokenizer_bpe.h"

#include <cstdio>
#include <queue>

#include "model/unicode.h"

namespace turbine::model {
namespace {

struct Symbol {
  uint32_t begin;
  uint32_t len;  // 0: merged into its left neighbour
  int32_t id;    // -1: not a vocabulary token
  int32_t prev;
  int32_t next;
};

struct Candidate {
  double priority;  // lower merges first
  int32_t left;
  int32_t right;
  int32_t left_id;
  int32_t right_id;
  int32_t merged;
  uint32_t len;
};

struct WorseCandidate {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.priority > b.priority || (a.priority == b.priority && a.left > b.left);
  }
};

}  // namespace

Result<BpeModel> BpeModel::create(std::vector<std::string> tokens, BpeOptions options,
                                  const std::vector<std::pair<std::string, std::string>>& merges,
                                  std::vector<float> scores, std::vector<bool> mergeable) {
  BpeModel m;
  m.tokens_ = std::move(tokens);
  m.options_ = options;
  m.index_.reserve(m.tokens_.size());
  for (size_t i = 0; i < m.tokens_.size(); ++i) {
    if (!m.tokens_[i].empty()) m.index_.emplace(m.tokens_[i], static_cast<int32_t>(i));
  }
  if (options.mode == BpeOptions::Mode::kRank) {
    m.merges_.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& [a, b] = merges[r];
      auto ia = m.find(a), ib = m.find(b), im = m.find(a + b);
      if (!ia || !ib || !im) {
        return invalidArgument("merge " + std::to_string(r) + " '" + a + " " + b +
                               "': names a token that is not in the vocabulary");
      }
      // The first (lowest-rank) occurrence of a pair wins, as in tokenizers.
      m.merges_.emplace(pairKey(*ia, *ib), Merge{static_cast<int32_t>(r), *im});
    }
  } else {
    scores.resize(m.tokens_.size(), 0.0f);
    mergeable.resize(m.tokens_.size(), true);
    m.scores_ = std::move(scores);
    m.mergeable_ = std::move(mergeable);
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    m.byte_ids_[b] = m.find(name).value_or(-1);
  }
  return m;
}

std::optional<int32_t> BpeModel::find(std::string_view text) const {
  auto it = index_.find(text);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

bool BpeModel::mergeOf(std::string_view piece, uint32_t a_begin, int32_t a_id, uint32_t b_end,
                       int32_t b_id, double* priority, int32_t* merged) const {
  if (options_.mode == BpeOptions::Mode::kRank) {
    if (a_id < 0 || b_id < 0) return false;
    auto it = merges_.find(pairKey(a_id, b_id));
    if (it == merges_.end()) return false;
    *priority = it->second.rank;
    *merged = it->second.id;
    return true;
  }
  auto id = find(piece.substr(a_begin, b_end - a_begin));
  if (!id || !mergeable_[*id]) return false;
  *priority = -static_cast<double>(scores_[*id]);
  *merged = *id;
  return true;
}

void BpeModel::emitUnknown(std::string_view text, std::vector<int32_t>* out, bool* last_unk) const {
  if (options_.byte_fallback) {
    bool all = true;
    for (char c : text) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
    if (all) {
      for (char c : text) out->push_back(byte_ids_[static_cast<uint8_t>(c)]);
      *last_unk = false;
      return;
    }
  }
  if (options_.unk_id < 0) return;  // no unknown token: the text is dropped
  if (!(options_.fuse_unk && *last_unk)) out->push_back(options_.unk_id);
  *last_unk = true;
}

void BpeModel::encodePiece(std::string_view piece, std::vector<int32_t>* out) const {
  if (piece.empty()) return;
  if (options_.ignore_merges) {
    if (auto id = find(piece)) {
      out->push_back(*id);
      return;
    }
  }
  std::vector<Symbol> syms;
  syms.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    size_t n = unicode::decodeChar(piece, i);
    if (n == 0) n = 1;  // not UTF-8 (cannot happen for sanitized input): one byte per symbol
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(n),
                    find(piece.substr(i, n)).value_or(-1), idx - 1, idx + 1});
    i += n;
  }
  syms.back().next = -1;

  std::priority_queue<Candidate, std::vector<Candidate>, WorseCandidate> heap;
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const Symbol& a = syms[l];
    const Symbol& b = syms[r];
    double prio = 0;
    int32_t merged = -1;
    if (mergeOf(piece, a.begin, a.id, b.begin + b.len, b.id, &prio, &merged)) {
      heap.push({prio, l, r, a.id, b.id, merged, a.len + b.len});
    }
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) {
    consider(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  }
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& a = syms[c.left];
    Symbol& b = syms[c.right];
    if (a.len == 0 || b.len == 0 || a.next != c.right || a.id != c.left_id || b.id != c.right_id ||
        a.len + b.len != c.len) {
      continue;  // stale: one side has merged since
    }
    a.len += b.len;
    a.id = c.merged;
    a.next = b.next;
    if (b.next >= 0) syms[b.next].prev = c.left;
    b.len = 0;
    consider(a.prev, c.left);
    consider(c.left, a.next);
  }

  bool last_unk = false;
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    const Symbol& s = syms[i];
    if (s.id >= 0) {
      out->push_back(s.id);
      last_unk = false;
    } else {
      emitUnknown(piece.substr(s.begin, s.len), out, &last_unk);
    }
  }
}

}  // namespace turbine::model
