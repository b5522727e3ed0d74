// AnonymousMemory: private anonymous memory whose data starts on a 2 MiB boundary and is advised
// MADV_HUGEPAGE, so that where the kernel has transparent huge pages a stream over it takes a TLB
// miss per 2 MiB and a page fault per 2 MiB on first touch, not per 4 KiB page. Used for what is
// streamed over again and again (a model's weights, MappedFile::anonymousCopy) and for the KV
// pool (engine/kv_cache.h), whose blocks are touched first one token at a time. The memory is
// zero and is committed by the OS page by page on first touch. Move-only; unmapped on
// destruction.
// Thread safety: none internally; the memory is plain memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace turbine {

class AnonymousMemory {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;

  // `size` writable bytes. ResourceExhausted (naming `what`) when they cannot be mapped.
  static Result<AnonymousMemory> allocate(size_t size, const std::string& what);

  AnonymousMemory() = default;
  ~AnonymousMemory();
  AnonymousMemory(AnonymousMemory&& other) noexcept;
  AnonymousMemory& operator=(AnonymousMemory&& other) noexcept;
  AnonymousMemory(const AnonymousMemory&) = delete;
  AnonymousMemory& operator=(const AnonymousMemory&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Makes the data read-only (writes then fault).
  Status protectReadOnly();

 private:
  void release();
  void* map_base_ = nullptr;  // the whole mapping (one huge page more than asked, for alignment)
  size_t map_size_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace turbine
