// SPDX-License-Identifier: Apache-2.0
// A Stream seen through another that does something (a cancel(), a
// close()) right after its first read returns: as another thread's call
// would, landing between two reads of one call (readExactly(), a
// BufferedReader's readUntil() or peek()).
#ifndef EVCHAN_TEST_SUPPORT_INTERRUPTED_STREAM_H
#define EVCHAN_TEST_SUPPORT_INTERRUPTED_STREAM_H

#include <functional>
#include <system_error>
#include <utility>

#include <evchan/stream.h>

namespace evchan::test {

/// Everything but the interruption is the wrapped stream's, cancellation
/// across a call's steps included (its marks and its steps under them).
class InterruptedAfterFirstRead : public Stream {
 public:
  InterruptedAfterFirstRead(Stream& stream, std::function<void()> interrupt)
      : stream_(stream), interrupt_(std::move(interrupt)) {}

  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return afterRead(stream_.readSome(buffer, size, ec));
  }
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return stream_.writeSome(buffer, size, ec);
  }
  void close() noexcept override { stream_.close(); }
  bool isOpen() const noexcept override { return stream_.isOpen(); }

  int reads() const { return reads_; }

 protected:
  CancelMark cancelMark(bool writing) const noexcept override { return cancelMarkOf(stream_, writing); }
  std::size_t readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return afterRead(readSomeSinceOf(stream_, mark, buffer, size, ec));
  }

 private:
  std::size_t afterRead(std::size_t bytes) noexcept {
    if (++reads_ == 1) interrupt_();
    return bytes;
  }

  Stream& stream_;
  std::function<void()> interrupt_;
  int reads_ = 0;
};

/// A Stream seen through another that is closed right after a call takes
/// its cancel mark, before the call's first step: as another thread's
/// close() landing just after readExactly() or writeAll() began.
class ClosedWhenMarked : public Stream {
 public:
  explicit ClosedWhenMarked(Stream& stream) : stream_(stream) {}

  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return stream_.readSome(buffer, size, ec);
  }
  std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return stream_.writeSome(buffer, size, ec);
  }
  void close() noexcept override { stream_.close(); }
  bool isOpen() const noexcept override { return stream_.isOpen(); }

 protected:
  CancelMark cancelMark(bool writing) const noexcept override {
    const CancelMark mark = cancelMarkOf(stream_, writing);
    stream_.close();
    return mark;
  }
  std::size_t readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    return readSomeSinceOf(stream_, mark, buffer, size, ec);
  }

 private:
  Stream& stream_;
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_INTERRUPTED_STREAM_H
