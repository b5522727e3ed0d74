#include "common/anonymous_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace turbine {
namespace {

size_t roundUpToHugePage(size_t n) {
  return (n + AnonymousMemory::kHugePage - 1) / AnonymousMemory::kHugePage *
         AnonymousMemory::kHugePage;
}

}  // namespace

Result<AnonymousMemory> AnonymousMemory::allocate(size_t size, const std::string& what) {
  AnonymousMemory m;
  if (size == 0) return m;
  // One huge page more than needed, so that the data can start on a 2 MiB boundary.
  const size_t map_size = roundUpToHugePage(size) + kHugePage;
  void* base =
      ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    return resourceExhausted(what + ": cannot map " + std::to_string(size) +
                             " bytes: " + std::strerror(errno));
  }
  m.map_base_ = base;
  m.map_size_ = map_size;
  const auto aligned = (reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1);
  m.data_ = reinterpret_cast<uint8_t*>(aligned);
  m.size_ = size;
  // Advisory: fails harmlessly (EINVAL) where the kernel has no transparent huge pages.
  (void)::madvise(m.data_, roundUpToHugePage(size), MADV_HUGEPAGE);
  return m;
}

AnonymousMemory::~AnonymousMemory() { release(); }

AnonymousMemory::AnonymousMemory(AnonymousMemory&& other) noexcept
    : map_base_(std::exchange(other.map_base_, nullptr)),
      map_size_(std::exchange(other.map_size_, 0)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

AnonymousMemory& AnonymousMemory::operator=(AnonymousMemory&& other) noexcept {
  if (this != &other) {
    release();
    map_base_ = std::exchange(other.map_base_, nullptr);
    map_size_ = std::exchange(other.map_size_, 0);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Status AnonymousMemory::protectReadOnly() {
  if (size_ == 0) return Status::ok();
  if (::mprotect(data_, roundUpToHugePage(size_), PROT_READ) != 0) {
    return ioError(std::string("mprotect failed: ") + std::strerror(errno));
  }
  return Status::ok();
}

void AnonymousMemory::release() {
  if (map_base_ != nullptr) ::munmap(map_base_, map_size_);
  map_base_ = nullptr;
  map_size_ = 0;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace turbine
