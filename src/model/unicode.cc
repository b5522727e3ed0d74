// UTF-8 decoding with the well-formedness table of Unicode §3.9 (Table 3-7) and the GPT-2
// byte-level alphabet.
#include "model/unicode.h"

#include <array>

namespace turbine::model::unicode {
namespace {

// Expected sequence length from the lead byte (0: not a valid lead byte).
size_t leadLength(uint8_t b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Valid range of the second byte given the lead byte (Table 3-7).
bool secondByteOk(uint8_t lead, uint8_t b) {
  switch (lead) {
    case 0xE0:
      return b >= 0xA0 && b <= 0xBF;
    case 0xED:
      return b >= 0x80 && b <= 0x9F;
    case 0xF0:
      return b >= 0x90 && b <= 0xBF;
    case 0xF4:
      return b >= 0x80 && b <= 0x8F;
    default:
      return b >= 0x80 && b <= 0xBF;
  }
}

// Number of bytes at s[i] that are consistent with a well-formed sequence (the lead included),
// capped at the expected length; `complete` says whether the whole sequence is there.
size_t validPrefix(std::string_view s, size_t i, size_t* expected) {
  const uint8_t lead = static_cast<uint8_t>(s[i]);
  *expected = leadLength(lead);
  if (*expected == 0) return 0;
  size_t n = 1;
  while (n < *expected && i + n < s.size()) {
    const uint8_t b = static_cast<uint8_t>(s[i + n]);
    const bool ok = (n == 1) ? secondByteOk(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
    ++n;
  }
  return n;
}

struct ByteTables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> from_char{};  // code points < 324 only
  ByteTables() {
    from_char.fill(-1);
    uint32_t extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const char32_t cp = printable ? static_cast<char32_t>(b) : 0x100 + extra++;
      to_char[b] = cp;
      from_char[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& tables() {
  static const ByteTables kTables;
  return kTables;
}

}  // namespace

size_t decodeChar(std::string_view s, size_t i, char32_t* cp) {
  size_t expected = 0;
  const size_t n = validPrefix(s, i, &expected);
  if (n == 0 || n != expected) return 0;
  if (cp != nullptr) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data() + i);
    switch (n) {
      case 1:
        *cp = p[0];
        break;
      case 2:
        *cp = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
        break;
      case 3:
        *cp = ((p[0] & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
        break;
      default:
        *cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) |
              (p[3] & 0x3Fu);
    }
  }
  return n;
}

size_t invalidRunLength(std::string_view s, size_t i) {
  size_t expected = 0;
  const size_t n = validPrefix(s, i, &expected);
  return n == 0 ? 1 : n;
}

void appendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t n = decodeChar(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitizeUtf8(std::string_view s) {
  if (isValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t n = decodeChar(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append(kReplacementUtf8);
      i += invalidRunLength(s, i);
    }
  }
  return out;
}

size_t completePrefixLength(std::string_view s) {
  // Only the last 3 bytes can hold an incomplete sequence.
  const size_t from = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = from; i < s.size(); ++i) {
    const uint8_t b = static_cast<uint8_t>(s[i]);
    if (b < 0xC0) continue;  // ASCII or continuation: not a lead byte
    size_t expected = 0;
    const size_t n = validPrefix(s, i, &expected);
    if (n > 0 && n < expected && i + n == s.size()) return i;  // truncated at the end
  }
  return s.size();
}

char32_t byteToChar(uint8_t b) { return tables().to_char[b]; }

int charToByte(char32_t cp) { return cp < tables().from_char.size() ? tables().from_char[cp] : -1; }

std::string toByteLevel(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) appendUtf8(out, byteToChar(static_cast<uint8_t>(c)));
  return out;
}

std::string fromByteLevel(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    size_t n = decodeChar(text, i, &cp);
    if (n == 0) {  // not UTF-8: keep the byte as is
      out.push_back(text[i++]);
      continue;
    }
    const int b = charToByte(cp);
    if (b >= 0) {
      out.push_back(static_cast<char>(b));
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

}  // namespace turbine::model::unicode
