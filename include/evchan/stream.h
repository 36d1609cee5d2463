// SPDX-License-Identifier: Apache-2.0
// Stream: the one interface of every byte stream (TCP, shared memory, and
// the transports built on them), with the read and write loops written once.
#ifndef EVCHAN_STREAM_H
#define EVCHAN_STREAM_H

#include <cstddef>
#include <string>
#include <system_error>

#include <evchan/export.h>

namespace evchan {

/// A connected, ordered byte stream.  An implementation supplies readSome()
/// and writeSome() in their non-throwing form, close() and isOpen(); the
/// throwing forms and the readExactly()/writeAll() loops are this class's,
/// the same for every stream.  Inside a task every wait suspends the task,
/// never its worker thread; on a plain thread it blocks the thread.  Each
/// wait is bounded by the stream's own timeout, where it has one.
///
/// Errors: Errc::not_open on a closed stream, Errc::null_buffer for a null
/// buffer with a non-zero size, Errc::end_of_stream once the peer closed
/// its side and everything it sent was read, and what the transport
/// reports (timed_out, connection_reset, broken_pipe, ...).  The throwing
/// forms throw SystemError naming the operation and the peer.
///
/// Thread safety: as the implementation documents; for TcpSocket and
/// ShmStream one thread (or task) may read while another writes.
class EVCHAN_API Stream {
 public:
  virtual ~Stream() = default;

  /// Reads what is available, at least one byte and at most `size`, waiting
  /// if nothing is.  A zero `size` returns 0 at once.  Returns the byte
  /// count; 0 with `ec` set on error.
  virtual std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept = 0;
  std::size_t readSome(void* buffer, std::size_t size);

  /// Writes at least one byte and at most `size`, waiting until the stream
  /// takes some.  A zero `size` returns 0 at once.  Returns the byte count;
  /// 0 with `ec` set on error.
  virtual std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept = 0;
  std::size_t writeSome(const void* buffer, std::size_t size);

  /// Reads exactly `size` bytes.  On error returns how many bytes were read
  /// before it (they are in `buffer`).
  std::size_t readExactly(void* buffer, std::size_t size, std::error_code& ec) noexcept;
  std::size_t readExactly(void* buffer, std::size_t size);

  /// Writes all `size` bytes.  On error returns how many were written.
  std::size_t writeAll(const void* buffer, std::size_t size, std::error_code& ec) noexcept;
  std::size_t writeAll(const void* buffer, std::size_t size);

  /// Closes the stream and frees its resources.  Idempotent.
  virtual void close() noexcept = 0;
  /// True until close() (or a move from this object).
  virtual bool isOpen() const noexcept = 0;

  /// Who is at the other end, as the throwing forms name it
  /// ("127.0.0.1:8080", a shared-memory name); empty when unknown or closed.
  virtual std::string peerName() const;

 protected:
  Stream() = default;
  Stream(const Stream&) = default;
  Stream& operator=(const Stream&) = default;
};

}  // namespace evchan

#endif  // EVCHAN_STREAM_H
