// A one-line progress bar on stderr ("label [#####.....]  42%"), redrawn in place.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

namespace turbine::app {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label)
      : label_(std::move(label)), tty_(::isatty(STDERR_FILENO) == 1) {}
  // fraction in [0, 1]; redraws only when the shown percentage changes.
  void update(float fraction) {
    int pct = static_cast<int>(fraction * 100.0f + 0.5f);
    if (pct < 0) pct = 0;
    if (pct > 100) pct = 100;
    if (pct == last_pct_) return;
    last_pct_ = pct;
    if (!tty_ && pct != 100) return;  // logs get one line, at the end
    constexpr int kWidth = 30;
    int filled = pct * kWidth / 100;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kWidth - filled), '.');
    std::fprintf(stderr, "%s%s [%s] %3d%%", tty_ ? "\r" : "", label_.c_str(), bar.c_str(), pct);
    if (pct == 100) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
  void finish() {
    if (last_pct_ != 100) update(1.0f);
  }

 private:
  std::string label_;
  bool tty_;
  int last_pct_ = -1;
};

}  // namespace turbine::app
