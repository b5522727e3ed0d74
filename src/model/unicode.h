// UTF-8 helpers and the GPT-2 byte-level alphabet used by the tokenizers.
// All functions are pure and thread-safe. "Valid UTF-8" follows RFC 3629 (no surrogates, no
// overlongs, at most U+10FFFF); invalid input is never rejected here, it is replaced by U+FFFD
// with one replacement per maximal ill-formed subpart (the rule of Unicode §3.9 and of Rust's
// String::from_utf8_lossy, which Hugging Face tokenizers uses when decoding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace turbine::model::unicode {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Length in bytes (1..4) of the well-formed character starting at s[i], or 0 when the bytes at i
// do not start a complete, well-formed character. Sets *cp when non-null and the result is > 0.
size_t decodeChar(std::string_view s, size_t i, char32_t* cp = nullptr);

// Number of bytes at s[i] that form the maximal ill-formed subpart (>= 1) when decodeChar(s, i)
// is 0; callers replace exactly these bytes with one U+FFFD.
size_t invalidRunLength(std::string_view s, size_t i);

void appendUtf8(std::string& out, char32_t cp);

bool isValidUtf8(std::string_view s);
// `s` with every ill-formed subpart replaced by U+FFFD (returns a copy of s when already valid).
std::string sanitizeUtf8(std::string_view s);

// Length of the longest prefix of `s` after which no character is left incomplete: a trailing
// truncated-but-so-far-valid sequence (1..3 bytes that more bytes could complete) is excluded.
// Bytes that can never become valid are included (they will be emitted as U+FFFD).
size_t completePrefixLength(std::string_view s);

// GPT-2 byte-level alphabet: every byte maps to one printable code point (printable Latin-1
// bytes map to themselves, the others to U+0100 + n in byte order).
char32_t byteToChar(uint8_t b);
// The byte a code point of the alphabet stands for, or -1 when `cp` is not in the alphabet.
int charToByte(char32_t cp);
// Maps every byte of `bytes` to its alphabet character (UTF-8 encoded).
std::string toByteLevel(std::string_view bytes);
// Inverse of toByteLevel; characters outside the alphabet are kept as their UTF-8 bytes.
std::string fromByteLevel(std::string_view text);

}  // namespace turbine::model::unicode
