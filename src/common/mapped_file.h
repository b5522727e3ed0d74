// MappedFile: a read-only memory map of a whole file, or (anonymousCopy) a read-only anonymous
// region holding a copy of such data in memory advised for transparent huge pages, for data that
// is streamed over again and again (a model's weights; see model_loader.cc).
// Thread safety: immutable after open() / anonymousCopy(); safe to read from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/anonymous_memory.h"
#include "common/status.h"

namespace turbine {

class MappedFile {
 public:
  // Maps `path` read-only. NotFound if it does not exist, IoError if it cannot be mapped.
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  // `size` bytes of AnonymousMemory (2 MiB-aligned, advised MADV_HUGEPAGE, so that, where the
  // kernel has transparent huge pages, a stream over it takes a TLB miss per 2 MiB rather than
  // per 4 KiB page), handed writable to `fill` once and then made read-only. path() is
  // `name`. IoError if the memory cannot be had; fill's error is returned as is.
  static Result<std::shared_ptr<MappedFile>> anonymousCopy(
      std::string name, size_t size, const std::function<Status(uint8_t* dst)>& fill);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // True for an anonymousCopy() region (whether the kernel backs it with huge pages is its call).
  bool anonymous() const { return memory_.size() != 0; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
  // anonymousCopy(): the memory data_ points into; empty for a file map.
  AnonymousMemory memory_;
};

}  // namespace turbine
