// Python str operations on UTF-8 text, shared by the string methods and the filters.
// Case mapping covers ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic; other scripts are
// left unchanged (Python would map a few more).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace turbine::model::jinja {

char32_t toUpper(char32_t c);
char32_t toLower(char32_t c);
bool isCased(char32_t c);
bool isAlpha(char32_t c);

std::string pyUpper(const std::string& s);
std::string pyLower(const std::string& s);
std::string pyTitle(const std::string& s);       // str.title()
std::string pyCapitalize(const std::string& s);  // str.capitalize()
std::string pySwapcase(const std::string& s);
// str.strip / lstrip / rstrip; chars nullopt = whitespace.
std::string pyStrip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / rsplit; sep nullopt = runs of whitespace. maxsplit < 0 = all.
std::vector<std::string> pySplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> pyRsplit(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> pySplitlines(const std::string& s, bool keepends);
// str.replace; count < 0 = all.
std::string pyReplace(const std::string& s, const std::string& old, const std::string& with, int64_t count);
int64_t pyCount(const std::string& s, const std::string& sub);
// str.find / rfind in code points; -1 when absent.
int64_t pyFind(const std::string& s, const std::string& sub, bool reverse);
std::string pyCenter(const std::string& s, int64_t width, bool left_just, bool right_just, const std::string& fill);

}  // namespace turbine::model::jinja
