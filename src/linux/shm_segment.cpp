// SPDX-License-Identifier: Apache-2.0
// The shared segment: creation, validation of a peer's, and the rings.
#include "linux/shm_segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace evchan::detail {
namespace {

constexpr unsigned kRequiredSeals = F_SEAL_SHRINK | F_SEAL_GROW;
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010  // Linux 5.1; older headers lack it
#endif
// Seals that forbid the writable shared mapping both sides need.
constexpr unsigned kForbiddenSeals = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

std::error_code lastError() { return std::error_code(errno, std::generic_category()); }

std::error_code badSegment() { return std::make_error_code(std::errc::bad_message); }

std::error_code protocolError() { return std::make_error_code(std::errc::protocol_error); }

// Of `n` bytes from ring offset `start` on, those before the ring's end.
std::size_t pieceUpToEnd(std::size_t start, std::uint64_t mask, std::size_t n) noexcept {
  const std::uint64_t toEnd = mask + 1 - start;
  return n < toEnd ? n : static_cast<std::size_t>(toEnd);
}

void* mapShared(int fd, std::size_t size, std::error_code& ec) {
  void* address = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (address == MAP_FAILED) {
    ec = lastError();
    return nullptr;
  }
  return address;
}

}  // namespace

bool validRingSize(std::size_t ringSize) noexcept {
  return ringSize >= kMinRingSize && ringSize <= kMaxRingSize && (ringSize & (ringSize - 1)) == 0;
}

bool validSegmentHeader(const SegmentHeader& fields, std::size_t mappedSize) noexcept {
  // validRingSize() first: it bounds ringSize, so the sum cannot wrap.
  return fields.magic == kSegmentMagic && fields.version == kSegmentVersion && fields.headerSize == kHeaderSize &&
         validRingSize(fields.ringSize) && fields.segmentSize == mappedSize &&
         kHeaderSize + 2 * fields.ringSize == mappedSize;
}

Segment createSegment(std::size_t ringSize, std::error_code& ec) noexcept {
  Segment segment;
  const std::size_t size = kHeaderSize + 2 * ringSize;
  const int fd = memfd_create("evchan-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    ec = lastError();
    return segment;
  }
  // Sealed before the peer ever sees it: it can then trust that the
  // segment keeps its size, and so can we.
  if (ftruncate(fd, static_cast<off_t>(size)) != 0 || fcntl(fd, F_ADD_SEALS, kRequiredSeals | F_SEAL_SEAL) != 0) {
    ec = lastError();
    ::close(fd);
    return segment;
  }
  void* address = mapShared(fd, size, ec);
  if (address == nullptr) {
    ::close(fd);
    return segment;
  }
  // A fresh memfd reads as zeros; the atomics are constructed in place.
  auto* header = new (address) SegmentHeader{};
  header->magic = kSegmentMagic;
  header->version = kSegmentVersion;
  header->headerSize = kHeaderSize;
  header->ringSize = ringSize;
  header->segmentSize = size;
  segment.fd = fd;  // the peer sees the header after sendmsg(): no fence needed
  segment.header = header;
  segment.size = size;
  segment.ringSize = ringSize;
  ec.clear();
  return segment;
}

Segment adoptSegment(int fd, std::error_code& ec) noexcept {
  Segment segment;
  struct stat status = {};
  const int seals = fcntl(fd, F_GET_SEALS);
  // Not a sealable memfd, one the peer could still truncate (every later
  // access would then raise SIGBUS here), or one sealed against the
  // writes the rings need: refused.
  if (fstat(fd, &status) != 0 || !S_ISREG(status.st_mode) || seals < 0 ||
      (static_cast<unsigned>(seals) & kRequiredSeals) != kRequiredSeals ||
      (static_cast<unsigned>(seals) & kForbiddenSeals) != 0 ||
      status.st_size < static_cast<off_t>(kHeaderSize + 2 * kMinRingSize) ||
      status.st_size > static_cast<off_t>(kHeaderSize + 2 * kMaxRingSize)) {
    ec = badSegment();
    ::close(fd);
    return segment;
  }
  const auto size = static_cast<std::size_t>(status.st_size);
  void* address = mapShared(fd, size, ec);
  ::close(fd);  // the mapping keeps the memory
  // A descriptor opened read-only (or write-sealed some way not checked
  // above) is the peer's fault, not ours: the same bad_message.
  if (address == nullptr && (ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted))
    ec = badSegment();
  if (address == nullptr) return segment;
  segment.header = static_cast<SegmentHeader*>(address);
  segment.size = size;
  // The peer may change the header while we look: one copy, then checks.
  SegmentHeader fields;
  std::memcpy(static_cast<void*>(&fields), address, offsetof(SegmentHeader, rings));
  if (!validSegmentHeader(fields, size)) {
    unmapSegment(segment);
    ec = badSegment();
    return segment;
  }
  segment.ringSize = static_cast<std::size_t>(fields.ringSize);
  ec.clear();
  return segment;
}

void unmapSegment(Segment& segment) noexcept {
  if (segment.header != nullptr) munmap(segment.header, segment.size);
  segment.header = nullptr;
  segment.size = 0;
}

std::uint64_t RingReader::available(std::error_code& ec) noexcept {
  // Sequentially consistent, like the stores below and the waiting flags:
  // the sleep handshake needs a store to be ordered before a later load
  // (Dekker), which acquire/release alone does not give.  (A fence would,
  // but ThreadSanitizer does not model fences.)
  const std::uint64_t head = indices_->head.load(std::memory_order_seq_cst);
  // Unsigned differences: a head behind what we saw, or more than a ring
  // ahead of our tail, both come out larger than the ring.
  if (head - tail_ > mask_ + 1 || head - seenHead_ > mask_ + 1) {
    ec = protocolError();
    return 0;
  }
  seenHead_ = head;
  return head - tail_;
}

std::size_t RingReader::read(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const std::uint64_t ready = available(ec);
  if (ec || ready == 0) return 0;
  const std::size_t n = ready < size ? static_cast<std::size_t>(ready) : size;
  const std::size_t start = static_cast<std::size_t>(tail_ & mask_);
  const std::size_t first = pieceUpToEnd(start, mask_, n);
  std::memcpy(buffer, data_ + start, first);
  std::memcpy(static_cast<unsigned char*>(buffer) + first, data_, n - first);
  peeked_ = n;
  consume(n);
  return n;
}

std::size_t RingReader::peek(const unsigned char** bytes, std::size_t size, std::error_code& ec) noexcept {
  peeked_ = 0;
  const std::uint64_t ready = available(ec);
  if (ec || ready == 0) return 0;
  const std::size_t start = static_cast<std::size_t>(tail_ & mask_);
  *bytes = data_ + start;
  peeked_ = pieceUpToEnd(start, mask_, ready < size ? static_cast<std::size_t>(ready) : size);
  return peeked_;
}

bool RingReader::consume(std::size_t n) noexcept {
  if (n > peeked_) return false;
  peeked_ = 0;
  if (n == 0) return true;
  tail_ += n;
  indices_->tail.store(tail_, std::memory_order_seq_cst);
  return true;
}

std::uint64_t RingWriter::room(std::error_code& ec) noexcept {
  const std::uint64_t tail = indices_->tail.load(std::memory_order_seq_cst);
  // The consumer can only have read what we wrote, and never un-read it.
  if (head_ - tail > mask_ + 1 || tail - seenTail_ > mask_ + 1) {
    ec = protocolError();
    return 0;
  }
  seenTail_ = tail;
  return mask_ + 1 - (head_ - tail);
}

std::size_t RingWriter::write(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const std::uint64_t free = room(ec);
  if (ec || free == 0) return 0;
  const std::size_t n = free < size ? static_cast<std::size_t>(free) : size;
  const std::size_t start = static_cast<std::size_t>(head_ & mask_);
  const std::size_t first = pieceUpToEnd(start, mask_, n);
  std::memcpy(data_ + start, buffer, first);
  std::memcpy(data_, static_cast<const unsigned char*>(buffer) + first, n - first);
  reserved_ = n;
  commit(n);
  return n;
}

std::size_t RingWriter::reserve(unsigned char** bytes, std::size_t size, std::error_code& ec) noexcept {
  reserved_ = 0;
  const std::uint64_t free = room(ec);
  if (ec || free == 0) return 0;
  const std::size_t start = static_cast<std::size_t>(head_ & mask_);
  *bytes = data_ + start;
  reserved_ = pieceUpToEnd(start, mask_, free < size ? static_cast<std::size_t>(free) : size);
  return reserved_;
}

bool RingWriter::commit(std::size_t n) noexcept {
  if (n > reserved_) return false;
  reserved_ = 0;
  if (n == 0) return true;
  head_ += n;
  indices_->head.store(head_, std::memory_order_seq_cst);
  return true;
}

}  // namespace evchan::detail
