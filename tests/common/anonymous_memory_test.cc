// AnonymousMemory: 2 MiB-aligned, zero, writable, advised for transparent huge pages (where the
// kernel has them), read-only on request, owned by one object at a time.
#include "common/anonymous_memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>

namespace turbine {
namespace {

constexpr size_t kHugePage = AnonymousMemory::kHugePage;

// The lines of /proc/self/smaps that describe the mapping holding `addr`; "" if none.
std::string smapsOf(const void* addr) {
  std::ifstream in("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(addr);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    const size_t dash = line.find('-');
    const size_t space = line.find(' ');
    const bool header = dash != std::string::npos && space != std::string::npos && dash < space &&
                        line.find_first_not_of("0123456789abcdef") == dash;
    if (header) {
      if (inside) return block;
      const uintptr_t lo = std::stoull(line.substr(0, dash), nullptr, 16);
      const uintptr_t hi = std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
      inside = a >= lo && a < hi;
      block.clear();
    }
    if (inside) block += line + "\n";
  }
  return inside ? block : "";
}

std::string thpMode() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s;
  std::getline(in, s);
  return s;
}

TEST(AnonymousMemoryTest, AlignedZeroWritableAndAdvised) {
  const size_t size = 3 * kHugePage + 17;
  auto m = AnonymousMemory::allocate(size, "test region");
  ASSERT_TRUE(m.isOk()) << m.status().toString();
  ASSERT_NE(m->data(), nullptr);
  EXPECT_EQ(m->size(), size);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m->data()) % kHugePage, 0u);
  for (size_t i = 0; i < size; i += 4093) ASSERT_EQ(m->data()[i], 0) << "byte " << i;
  m->data()[0] = 1;
  m->data()[size - 1] = 2;
  EXPECT_EQ(m->data()[0] + m->data()[size - 1], 3);
  const std::string smaps = smapsOf(m->data());
  ASSERT_FALSE(smaps.empty());
  const std::string mode = thpMode();
  if (mode.empty() || mode.find("[never]") != std::string::npos) {
    GTEST_SKIP() << "this kernel has no transparent huge pages (" << mode << ")";
  }
  // The advice is what the allocation promises; VmFlags "hg" is MADV_HUGEPAGE.
  const size_t flags = smaps.find("VmFlags:");
  ASSERT_NE(flags, std::string::npos) << smaps;
  EXPECT_NE(smaps.find(" hg", flags), std::string::npos) << smaps;
}

TEST(AnonymousMemoryTest, EmptyMovedAndReadOnly) {
  auto empty = AnonymousMemory::allocate(0, "empty");
  ASSERT_TRUE(empty.isOk());
  EXPECT_EQ(empty->data(), nullptr);
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_TRUE(empty->protectReadOnly().isOk());

  auto m = AnonymousMemory::allocate(4096, "small");
  ASSERT_TRUE(m.isOk());
  uint8_t* p = m->data();
  p[5] = 42;
  AnonymousMemory moved = std::move(*m);
  EXPECT_EQ(m->data(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state
  EXPECT_EQ(moved.data(), p);
  EXPECT_EQ(moved.data()[5], 42);
  ASSERT_TRUE(moved.protectReadOnly().isOk());
  const std::string smaps = smapsOf(moved.data());
  ASSERT_FALSE(smaps.empty());
  std::istringstream header(smaps);
  std::string range, perms;
  header >> range >> perms;
  EXPECT_EQ(perms.substr(0, 3), "r--");
  AnonymousMemory other;
  other = std::move(moved);
  EXPECT_EQ(other.data(), p);
  EXPECT_EQ(other.data()[5], 42);
}

TEST(AnonymousMemoryTest, ImpossibleSizeIsAClearError) {
  auto m = AnonymousMemory::allocate(size_t{1} << 62, "the KV pool");
  ASSERT_FALSE(m.isOk());
  EXPECT_EQ(m.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(m.status().message().find("the KV pool"), std::string::npos) << m.status().toString();
}

}  // namespace
}  // namespace turbine
