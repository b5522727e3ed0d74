#include "common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace turbine {

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return notFound(path + ": no such file");
    return ioError(path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return ioError(path + ": " + std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return invalidArgument(path + ": is a directory, expected a file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  const uint8_t* data = nullptr;
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return ioError(path + ": mmap failed: " + std::strerror(e));
    }
    data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return std::shared_ptr<MappedFile>(new MappedFile(path, data, size));
}

Result<std::shared_ptr<MappedFile>> MappedFile::anonymousCopy(
    std::string name, size_t size, const std::function<Status(uint8_t* dst)>& fill) {
  constexpr size_t kHugePage = size_t{2} << 20;
  // Over-allocate by one huge page so that the data can start on a 2 MiB boundary.
  const size_t map_size = (size + kHugePage - 1) / kHugePage * kHugePage + kHugePage;
  void* base =
      ::mmap(nullptr, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    return ioError(name + ": cannot allocate " + std::to_string(size) +
                   " bytes for the weights: " + std::strerror(errno));
  }
  auto aligned = (reinterpret_cast<uintptr_t>(base) + kHugePage - 1) & ~(kHugePage - 1);
  auto* data = reinterpret_cast<uint8_t*>(aligned);
  const size_t data_span = (size + kHugePage - 1) / kHugePage * kHugePage;
  // Advisory: fails harmlessly (EINVAL) where the kernel has no transparent huge pages.
  (void)::madvise(data, data_span, MADV_HUGEPAGE);
  std::shared_ptr<MappedFile> f(new MappedFile(std::move(name), data, size));
  f->map_base_ = base;
  f->map_size_ = map_size;
  if (size > 0) {
    TURBINE_RETURN_IF_ERROR(fill(data));
    if (::mprotect(data, data_span, PROT_READ) != 0) {
      return ioError(f->path_ + ": mprotect failed: " + std::strerror(errno));
    }
  }
  return f;
}

MappedFile::~MappedFile() {
  if (map_base_ != nullptr) {
    ::munmap(map_base_, map_size_);
  } else if (data_ != nullptr) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
}

}  // namespace turbine
