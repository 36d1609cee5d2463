// SPDX-License-Identifier: Apache-2.0
// Events that read and write files at an offset.
#ifndef EVCHAN_FILE_EVENTS_H
#define EVCHAN_FILE_EVENTS_H

#include <cstddef>
#include <cstdint>

#include <evchan/event.h>
#include <evchan/export.h>
#include <evchan/file.h>

namespace evchan {

/// Reads up to size() bytes of a file at offset() into the buffer, in one
/// operation: bytesTransferred() may be short, and is 0 at the end of the
/// file.  The aio, io_uring and iocp backends have the kernel perform it
/// (POSIX aio, a ring operation, an overlapped ReadFile; iocp runs a file
/// it cannot reopen for overlapped IO on a worker); the other backends
/// run the read on a worker thread that the pool counts as blocked.  Any
/// number may be in flight on one file.  An offset of 2^63 or more (beyond off_t) is
/// refused by post() with std::errc::invalid_argument on every backend.
class EVCHAN_API FileReadEvent : public Event {
 public:
  /// A read of `size` bytes of `file` at `offset` into `buffer`; the file and
  /// the buffer must outlive the event's time in flight.
  FileReadEvent(File& file, std::uint64_t offset, void* buffer, std::size_t size) noexcept
      : Event(Kind::FileRead), file_(&file), offset_(offset), buffer_(buffer), size_(size) {}
  /// Points the event at another place before re-posting it.
  void set(std::uint64_t offset, void* buffer, std::size_t size) noexcept {
    offset_ = offset, buffer_ = buffer, size_ = size;
  }
  /// The file the event reads.
  File& file() const noexcept { return *file_; }
  /// Where in the file it reads, in bytes from the start.
  std::uint64_t offset() const noexcept { return offset_; }
  /// The buffer it reads into.
  void* buffer() const noexcept { return buffer_; }
  /// How many bytes it reads at most.
  std::size_t size() const noexcept { return size_; }
  /// Once completed without error: how many bytes were read (0 at the end of the file).
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::EventAccess;
  File* file_;
  std::uint64_t offset_;
  void* buffer_;
  std::size_t size_;
  std::size_t transferred_ = 0;
};

/// Writes up to size() bytes from the buffer into a file at offset(), in
/// one operation (bytesTransferred() may be short: post the rest again).
/// Offsets of 2^63 and more are refused as for FileReadEvent.
class EVCHAN_API FileWriteEvent : public Event {
 public:
  /// A write of `size` bytes from `buffer` into `file` at `offset`; the file
  /// and the buffer must outlive the event's time in flight.
  FileWriteEvent(File& file, std::uint64_t offset, const void* buffer, std::size_t size) noexcept
      : Event(Kind::FileWrite), file_(&file), offset_(offset), buffer_(buffer), size_(size) {}
  /// Points the event at another place before re-posting it.
  void set(std::uint64_t offset, const void* buffer, std::size_t size) noexcept {
    offset_ = offset, buffer_ = buffer, size_ = size;
  }
  /// The file the event writes.
  File& file() const noexcept { return *file_; }
  /// Where in the file it writes, in bytes from the start.
  std::uint64_t offset() const noexcept { return offset_; }
  /// The buffer it writes from.
  const void* buffer() const noexcept { return buffer_; }
  /// How many bytes it writes at most.
  std::size_t size() const noexcept { return size_; }
  /// Once completed without error: how many bytes were written.
  std::size_t bytesTransferred() const noexcept { return transferred_; }

 private:
  friend struct detail::EventAccess;
  File* file_;
  std::uint64_t offset_;
  const void* buffer_;
  std::size_t size_;
  std::size_t transferred_ = 0;
};

}  // namespace evchan

#endif  // EVCHAN_FILE_EVENTS_H
