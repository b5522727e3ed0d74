#include "model/jinja/strings.h"

#include <algorithm>

#include "model/jinja/value.h"

namespace turbine::model::jinja {

char32_t toUpper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149) {
    bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_lower ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}

char32_t toLower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149) {
    bool odd_lower = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
    if (odd_lower ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}

bool isCased(char32_t c) { return toUpper(c) != c || toLower(c) != c; }

bool isAlpha(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return isCased(c) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3040 && c <= 0x30FF) || (c >= 0xAC00 && c <= 0xD7AF);
}

static std::string mapChars(const std::string& s, char32_t (*f)(char32_t)) {
  if (isAscii(s)) {
    std::string out = s;
    for (char& ch : out) ch = static_cast<char>(f(static_cast<unsigned char>(ch)));
    return out;
  }
  std::u32string cps = utf8Decode(s);
  for (char32_t& c : cps) c = f(c);
  return utf8Encode(cps);
}

std::string pyUpper(const std::string& s) { return mapChars(s, toUpper); }
std::string pyLower(const std::string& s) { return mapChars(s, toLower); }

std::string pyTitle(const std::string& s) {
  std::u32string cps = utf8Decode(s);
  bool prev_cased = false;
  for (char32_t& c : cps) {
    bool cased = isCased(c);
    c = prev_cased ? toLower(c) : toUpper(c);
    prev_cased = cased;
  }
  return utf8Encode(cps);
}

std::string pyCapitalize(const std::string& s) {
  std::u32string cps = utf8Decode(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? toUpper(cps[i]) : toLower(cps[i]);
  return utf8Encode(cps);
}

std::string pySwapcase(const std::string& s) {
  std::u32string cps = utf8Decode(s);
  for (char32_t& c : cps) c = toUpper(c) != c ? toUpper(c) : toLower(c);
  return utf8Encode(cps);
}

namespace {
// The code point that starts at byte i, and its byte length (an invalid byte counts alone).
std::pair<char32_t, size_t> cpAt(const std::string& s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  char32_t raw = c < 0x80 ? char32_t{c} : char32_t{0xDC00u + c};
  if (len == 1 || i + len > s.size()) return {raw, 1};
  std::u32string cps = utf8Decode(std::string_view(s).substr(i, len));
  if (cps.size() == 1) return {cps[0], len};
  return {raw, 1};
}
// The code point that ends at byte end, and its byte length.
std::pair<char32_t, size_t> cpBefore(const std::string& s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  auto [cp, len] = cpAt(s, b);
  if (b + len == end) return {cp, len};
  unsigned char c = static_cast<unsigned char>(s[end - 1]);
  return {c < 0x80 ? char32_t{c} : char32_t{0xDC00u + c}, 1};
}
}  // namespace

std::string pyStrip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right) {
  std::u32string set = chars ? utf8Decode(*chars) : std::u32string();
  auto strip = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : isPySpace(c); };
  size_t b = 0, e = s.size();
  while (left && b < e) {
    auto [cp, len] = cpAt(s, b);
    if (!strip(cp)) break;
    b += len;
  }
  while (right && e > b) {
    auto [cp, len] = cpBefore(s, e);
    if (!strip(cp)) break;
    e -= len;
  }
  return s.substr(b, e - b);
}

std::vector<std::string> pySplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) throwRuntime("empty separator");
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      size_t at = s.find(*sep, start);
      if (at == std::string::npos) break;
      out.push_back(s.substr(start, at - start));
      start = at + sep->size();
    }
    out.push_back(s.substr(start));
    return out;
  }
  std::u32string cps = utf8Decode(s);
  size_t i = 0, n = cps.size();
  while (true) {
    while (i < n && isPySpace(cps[i])) ++i;
    if (i >= n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t e = n;
      while (e > i && isPySpace(cps[e - 1])) --e;
      out.push_back(utf8Encode(std::u32string_view(cps).substr(i, e - i)));
      break;
    }
    size_t j = i;
    while (j < n && !isPySpace(cps[j])) ++j;
    out.push_back(utf8Encode(std::u32string_view(cps).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::vector<std::string> pyRsplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit) {
  if (maxsplit < 0) return pySplit(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) throwRuntime("empty separator");
    size_t end = s.size();
    while (static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      size_t at = s.rfind(*sep, end - sep->size());
      if (at == std::string::npos) break;
      out.push_back(s.substr(at + sep->size(), end - at - sep->size()));
      end = at;
    }
    out.push_back(s.substr(0, end));
  } else {
    std::u32string cps = utf8Decode(s);
    size_t e = cps.size();
    while (true) {
      while (e > 0 && isPySpace(cps[e - 1])) --e;
      if (e == 0) break;
      if (static_cast<int64_t>(out.size()) >= maxsplit) {
        size_t b = 0;
        while (b < e && isPySpace(cps[b])) ++b;
        out.push_back(utf8Encode(std::u32string_view(cps).substr(b, e - b)));
        break;
      }
      size_t b = e;
      while (b > 0 && !isPySpace(cps[b - 1])) --b;
      out.push_back(utf8Encode(std::u32string_view(cps).substr(b, e - b)));
      e = b;
    }
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> pySplitlines(const std::string& s, bool keepends) {
  std::u32string cps = utf8Decode(s);
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  auto isBreak = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
  };
  while (i < cps.size()) {
    if (!isBreak(cps[i])) {
      ++i;
      continue;
    }
    size_t eol = i;
    i += (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ? 2 : 1;
    out.push_back(utf8Encode(std::u32string_view(cps).substr(start, (keepends ? i : eol) - start)));
    start = i;
  }
  if (start < cps.size()) out.push_back(utf8Encode(std::u32string_view(cps).substr(start)));
  return out;
}

std::string pyReplace(const std::string& s, const std::string& old, const std::string& with, int64_t count) {
  std::string out;
  if (old.empty()) {
    std::u32string cps = utf8Decode(s);
    int64_t done = 0;
    for (char32_t c : cps) {
      if (count < 0 || done < count) {
        out += with;
        ++done;
      }
      appendUtf8(out, c);
    }
    if (count < 0 || done < count) out += with;
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t at = s.find(old, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += with;
    start = at + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

int64_t pyCount(const std::string& s, const std::string& sub) {
  if (sub.empty()) return static_cast<int64_t>(utf8Decode(s).size()) + 1;
  int64_t n = 0;
  for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
  return n;
}

int64_t pyFind(const std::string& s, const std::string& sub, bool reverse) {
  size_t at = reverse ? s.rfind(sub) : s.find(sub);
  if (at == std::string::npos) return -1;
  return static_cast<int64_t>(utf8Decode(std::string_view(s).substr(0, at)).size());
}

std::string pyCenter(const std::string& s, int64_t width, bool left_just, bool right_just, const std::string& fill) {
  int64_t len = static_cast<int64_t>(utf8Decode(s).size());
  if (width <= len) return s;
  int64_t pad = width - len;
  int64_t left = left_just ? 0 : right_just ? pad : pad / 2 + (pad & width & 1);
  int64_t right = pad - left;
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < right; ++i) out += fill;
  return out;
}

}  // namespace turbine::model::jinja
