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
  auto memory = AnonymousMemory::allocate(size, name + ": the weights' copy");
  if (!memory.isOk()) return ioError(memory.status().message());
  std::shared_ptr<MappedFile> f(new MappedFile(std::move(name), memory->data(), size));
  f->memory_ = std::move(*memory);
  if (size > 0) {
    TURBINE_RETURN_IF_ERROR(fill(f->memory_.data()));
    if (Status s = f->memory_.protectReadOnly(); !s.isOk()) {
      return ioError(f->path_ + ": " + s.message());
    }
  }
  return f;
}

MappedFile::~MappedFile() {
  if (memory_.data() == nullptr && data_ != nullptr) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
}

}  // namespace turbine
