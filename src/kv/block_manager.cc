#include "kv/block_manager.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace turbine::kv {

// ---- Slots ----

KvBlockManager::Slots::Slots(int64_t capacity) : meta_(static_cast<size_t>(capacity)) {
  free_.reserve(meta_.size());
  for (int64_t s = capacity - 1; s >= 0; --s) free_.push_back(s);
}

std::optional<int64_t> KvBlockManager::Slots::find(BlockHash hash) const {
  const auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  return it->second;
}

void KvBlockManager::Slots::unlink(int64_t slot) {
  Meta& m = meta_[slot];
  (m.prev >= 0 ? meta_[m.prev].next : lru_) = m.next;
  (m.next >= 0 ? meta_[m.next].prev : mru_) = m.prev;
  m.prev = m.next = -1;
}

void KvBlockManager::Slots::linkMostRecent(int64_t slot) {
  Meta& m = meta_[slot];
  m.prev = mru_;
  m.next = -1;
  (mru_ >= 0 ? meta_[mru_].next : lru_) = slot;
  mru_ = slot;
}

void KvBlockManager::Slots::touch(int64_t slot) {
  if (slot == mru_) return;
  unlink(slot);
  linkMostRecent(slot);
}

std::optional<int64_t> KvBlockManager::Slots::takeFree() {
  if (free_.empty()) return std::nullopt;
  const int64_t s = free_.back();
  free_.pop_back();
  return s;
}

void KvBlockManager::Slots::giveBack(int64_t slot) { free_.push_back(slot); }

int64_t KvBlockManager::Slots::leastRecent() const { return lru_; }

void KvBlockManager::Slots::insert(int64_t slot, BlockHash hash, std::optional<BlockHash> parent) {
  Meta& m = meta_[slot];
  m.hash = hash;
  m.has_parent = parent.has_value();
  m.parent = parent.value_or(0);
  by_hash_.emplace(hash, slot);
  linkMostRecent(slot);
}

void KvBlockManager::Slots::erase(int64_t slot) {
  unlink(slot);
  by_hash_.erase(meta_[slot].hash);
  free_.push_back(slot);
}

void KvBlockManager::Slots::clear() {
  for (const auto& [hash, slot] : by_hash_) {
    meta_[slot].prev = meta_[slot].next = -1;
    free_.push_back(slot);
  }
  by_hash_.clear();
  lru_ = mru_ = -1;
}

std::optional<BlockHash> KvBlockManager::Slots::parent(int64_t slot) const {
  if (!meta_[slot].has_parent) return std::nullopt;
  return meta_[slot].parent;
}

// ---- KvBlockManager ----

Result<std::unique_ptr<KvBlockManager>> KvBlockManager::create(const KvBlockManagerOptions& o) {
  if (o.block_bytes == 0 && o.disk_blocks > 0)
    return invalidArgument("KV block manager: a disk tier needs block_bytes > 0");
  if (o.host_blocks < 0 || o.disk_blocks < 0)
    return invalidArgument("KV block manager: negative tier size");
  if (o.host_blocks == 0 && o.disk_blocks == 0)
    return invalidArgument("KV block manager: neither a host nor a disk tier");
  AnonymousMemory host;
  const size_t host_bytes = static_cast<size_t>(o.host_blocks) * o.block_bytes;
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0 && host_bytes > static_cast<size_t>(pages) * static_cast<size_t>(page)) {
    // The tier is faulted in from the start: more than the machine has would end in the OOM killer.
    return invalidArgument("KV host cache of " + std::to_string(host_bytes >> 20) +
                           " MiB is larger than this machine's memory (" +
                           std::to_string((static_cast<size_t>(pages) * static_cast<size_t>(page)) >> 20) +
                           " MiB)");
  }
  if (o.host_blocks > 0 && o.block_bytes > 0) {
    TURBINE_ASSIGN_OR_RETURN(
        host, AnonymousMemory::allocate(static_cast<size_t>(o.host_blocks) * o.block_bytes,
                                        "KV host cache"));
  }
  int fd = -1;
  if (o.disk_blocks > 0) {
    if (o.disk_dir.empty()) return invalidArgument("KV disk cache: no folder given");
    std::string path = o.disk_dir + "/turbine-kv-XXXXXX";
    fd = ::mkstemp(path.data());
    if (fd < 0) {
      return ioError("KV disk cache: cannot create a file in " + o.disk_dir + ": " +
                     std::strerror(errno));
    }
    ::unlink(path.c_str());  // the file lives as long as the descriptor
    const auto size = static_cast<off_t>(o.disk_blocks) * static_cast<off_t>(o.block_bytes);
    if (::ftruncate(fd, size) != 0) {
      const int err = errno;
      ::close(fd);
      return ioError("KV disk cache: cannot size a file in " + o.disk_dir + " to " +
                     std::to_string(size) + " bytes: " + std::strerror(err));
    }
  }
  return std::unique_ptr<KvBlockManager>(new KvBlockManager(o, std::move(host), fd));
}

KvBlockManager::KvBlockManager(const KvBlockManagerOptions& options, AnonymousMemory host,
                               int disk_fd)
    : options_(options),
      host_mem_(std::move(host)),
      host_(options.host_blocks),
      disk_(options.disk_blocks),
      disk_fd_(disk_fd) {
  if (disk_fd_ >= 0) staging_.resize(options_.block_bytes);
  if (host_mem_.size() > 0) host_prefault_.start(host_mem_.data(), host_mem_.size());
  stats_.host_capacity = options_.host_blocks;
  stats_.disk_capacity = options_.disk_blocks;
}

KvBlockManager::~KvBlockManager() {
  if (disk_fd_ >= 0) ::close(disk_fd_);
}

Status KvBlockManager::offload(BlockHash hash, std::optional<BlockHash> parent,
                               const CopyOut& copy) {
  if (host_.capacity() > 0) {
    if (const auto slot = host_.find(hash)) {
      host_.touch(*slot);
      ++stats_.offload_hits;
      return Status::ok();
    }
    const int64_t slot = makeHostRoom();
    if (Status st = hasData() ? copy(hostSlot(slot)) : Status::ok(); !st.isOk()) {
      host_.giveBack(slot);
      return st;
    }
    host_.insert(slot, hash, parent);
    ++stats_.offloaded;
    emitStored(Tier::kHost, hash, parent);
    return Status::ok();
  }
  if (const auto slot = disk_.find(hash)) {
    disk_.touch(*slot);
    ++stats_.offload_hits;
    return Status::ok();
  }
  TURBINE_RETURN_IF_ERROR(copy(staging_.data()));
  TURBINE_RETURN_IF_ERROR(storeOnDisk(hash, parent, staging_.data()));
  ++stats_.offloaded;
  return Status::ok();
}

int64_t KvBlockManager::makeHostRoom() {
  if (const auto free = host_.takeFree()) return *free;
  const int64_t victim = host_.leastRecent();
  const BlockHash hash = host_.hash(victim);
  const auto parent = host_.parent(victim);
  if (disk_.capacity() > 0) {
    if (const auto on_disk = disk_.find(hash)) {
      disk_.touch(*on_disk);
    } else if (storeOnDisk(hash, parent, hostSlot(victim)).isOk()) {
      ++stats_.demoted;
    } else {
      ++stats_.dropped;
    }
  } else {
    ++stats_.dropped;
  }
  // Stored on disk (or dropped) before removed from host, so the block never looks absent.
  emitRemoved(Tier::kHost, hash);
  host_.erase(victim);
  return host_.takeFree().value();
}

Status KvBlockManager::storeOnDisk(BlockHash hash, std::optional<BlockHash> parent,
                                   const void* data) {
  int64_t slot;
  if (const auto free = disk_.takeFree()) {
    slot = *free;
  } else {
    slot = disk_.leastRecent();
    emitRemoved(Tier::kDisk, disk_.hash(slot));
    ++stats_.dropped;
    disk_.erase(slot);
    slot = disk_.takeFree().value();
  }
  if (Status st = diskWrite(slot, data); !st.isOk()) {
    disk_.giveBack(slot);
    return st;
  }
  disk_.insert(slot, hash, parent);
  emitStored(Tier::kDisk, hash, parent);
  return Status::ok();
}

// One block between `data` and disk slot `slot`, in as many pread / pwrite calls as it takes.
template <typename Io>
Status KvBlockManager::diskIo(int64_t slot, uint8_t* data, const char* what, Io io) {
  size_t left = options_.block_bytes;
  off_t at = static_cast<off_t>(slot) * static_cast<off_t>(options_.block_bytes);
  while (left > 0) {
    const ssize_t n = io(disk_fd_, data, left, at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ++stats_.io_errors;
      return ioError(std::string("KV disk cache: ") + what + " failed: " +
                     (n < 0 ? std::strerror(errno) : "no progress"));
    }
    data += n, at += n, left -= static_cast<size_t>(n);
  }
  return Status::ok();
}

Status KvBlockManager::diskWrite(int64_t slot, const void* data) {
  return diskIo(slot, static_cast<uint8_t*>(const_cast<void*>(data)), "write",
                [](int fd, uint8_t* p, size_t n, off_t at) { return ::pwrite(fd, p, n, at); });
}

Status KvBlockManager::diskRead(int64_t slot, void* data) {
  return diskIo(slot, static_cast<uint8_t*>(data), "read",
                [](int fd, uint8_t* p, size_t n, off_t at) { return ::pread(fd, p, n, at); });
}

std::optional<Tier> KvBlockManager::find(BlockHash hash) const {
  if (host_.find(hash)) return Tier::kHost;
  if (disk_.find(hash)) return Tier::kDisk;
  return std::nullopt;
}

void KvBlockManager::touch(BlockHash hash) {
  if (const auto s = host_.find(hash)) host_.touch(*s);
  if (const auto s = disk_.find(hash)) disk_.touch(*s);
}

Status KvBlockManager::readBlock(BlockHash hash, const CopyIn& copy, bool* from_disk) {
  *from_disk = false;
  if (const auto slot = host_.find(hash)) {
    host_.touch(*slot);
    return hasData() ? copy(hostSlot(*slot)) : Status::ok();
  }
  const auto slot = disk_.find(hash);
  if (!slot) return notFound("KV block not in the host or disk cache");
  if (Status st = diskRead(*slot, staging_.data()); !st.isOk()) {
    emitRemoved(Tier::kDisk, hash);
    disk_.erase(*slot);
    return st;
  }
  disk_.touch(*slot);
  *from_disk = true;
  return copy(staging_.data());
}

Status KvBlockManager::onboard(BlockHash hash, const CopyIn& copy) {
  bool from_disk = false;
  TURBINE_RETURN_IF_ERROR(readBlock(hash, copy, &from_disk));
  if (!from_disk) {
    ++stats_.onboarded_host;
    return Status::ok();
  }
  ++stats_.onboarded_disk;
  if (host_.capacity() > 0) {
    storeOnHost(hash, disk_.parent(*disk_.find(hash)), staging_.data());
    ++stats_.promoted;
  }
  return Status::ok();
}

Status KvBlockManager::exportBlock(BlockHash hash, const CopyIn& copy) {
  bool from_disk = false;
  TURBINE_RETURN_IF_ERROR(readBlock(hash, copy, &from_disk));
  ++stats_.exported;
  return Status::ok();
}

void KvBlockManager::storeOnHost(BlockHash hash, std::optional<BlockHash> parent, const void* data) {
  const int64_t slot = makeHostRoom();
  std::memcpy(hostSlot(slot), data, options_.block_bytes);
  host_.insert(slot, hash, parent);
  emitStored(Tier::kHost, hash, parent);
}

void KvBlockManager::clear() {
  host_.clear();
  disk_.clear();
}

std::vector<KvEvent> KvBlockManager::takeEvents() {
  std::vector<KvEvent> out;
  out.swap(events_);
  return out;
}

KvBlockManagerStats KvBlockManager::stats() const {
  KvBlockManagerStats s = stats_;
  s.host_used = host_.used();
  s.disk_used = disk_.used();
  return s;
}

void KvBlockManager::emitStored(Tier tier, BlockHash hash, std::optional<BlockHash> parent) {
  appendEvent(events_, BlockStored{{hash}, parent, tier});
}

void KvBlockManager::emitRemoved(Tier tier, BlockHash hash) {
  appendEvent(events_, BlockRemoved{{hash}, tier});
}

}  // namespace turbine::kv
