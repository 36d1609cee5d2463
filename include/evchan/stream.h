// SPDX-License-Identifier: Apache-2.0
// Stream: the one interface of every byte stream (TCP, shared memory, and
// the transports built on them), with the read and write loops written once.
#ifndef EVCHAN_STREAM_H
#define EVCHAN_STREAM_H

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <system_error>

#include <evchan/buffer.h>
#include <evchan/export.h>

namespace evchan {

/// A connected, ordered byte stream.  An implementation supplies readSome()
/// and writeSome() in their non-throwing form, close() and isOpen(); the
/// throwing forms and the readExactly()/writeAll() loops are this class's,
/// the same for every stream.  Inside a task every wait suspends the task,
/// never its worker thread; on a plain thread it blocks the thread.  Each
/// wait is bounded by the stream's own timeout, where it has one.
///
/// Writes come in two shapes: one buffer, or several pieces written in
/// order as one stream of bytes (gather, or scatter/gather, writes:
/// ConstBuffer arrays).
///
/// Errors: Errc::not_open on a closed stream, Errc::null_buffer for a null
/// buffer with a non-zero size, Errc::end_of_stream once the peer closed
/// its side and everything it sent was read, and what the transport
/// reports (timed_out, connection_reset, broken_pipe, ...).  A close()
/// while a readExactly() or writeAll() (or a BufferedReader call) is under
/// way ends it with std::errc::operation_canceled wherever it lands, in a
/// step or between two, on every stream evchan offers: Errc::not_open is
/// for calls begun after the close.  The throwing forms throw SystemError
/// naming the operation and the peer.
///
/// Thread safety: as the implementation documents; for TcpSocket and
/// ShmStream one thread (or task) may read while another writes.
class EVCHAN_API Stream {
 public:
  virtual ~Stream() = default;

  ///@{
  /// Reads what is available, at least one byte and at most `size`, waiting
  /// if nothing is.  A zero `size` returns 0 at once.  Returns the byte
  /// count; 0 with `ec` set on error.
  virtual std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept = 0;
  std::size_t readSome(void* buffer, std::size_t size);
  ///@}

  ///@{
  /// Writes at least one byte and at most `size`, waiting until the stream
  /// takes some.  A zero `size` returns 0 at once.  Returns the byte count;
  /// 0 with `ec` set on error.
  virtual std::size_t writeSome(const void* buffer, std::size_t size, std::error_code& ec) noexcept = 0;
  std::size_t writeSome(const void* buffer, std::size_t size);
  ///@}

  ///@{
  /// Keeps writeSome(nullptr, size) the single-buffer form (null_buffer
  /// for a non-zero size) beside the gather form below.
  std::size_t writeSome(std::nullptr_t, std::size_t size, std::error_code& ec) noexcept {
    return writeSome(static_cast<const void*>(nullptr), size, ec);
  }
  std::size_t writeSome(std::nullptr_t, std::size_t size) { return writeSome(static_cast<const void*>(nullptr), size); }
  ///@}

  ///@{
  /// Gather write: writes at least one byte and at most the pieces' total,
  /// taken from `buffers[0]`, `buffers[1]`, ... `buffers[count - 1]` in
  /// order, waiting until the stream takes some.  Returns the byte count
  /// (it may end inside a piece); 0 with `ec` set on error.  Empty pieces
  /// are skipped; when there is nothing to write (count 0, or only empty
  /// pieces) it returns 0 at once, without error.  A null `buffers` with a
  /// non-zero `count`, or a piece with null data and a non-zero size, is
  /// Errc::null_buffer, and nothing is written.  Neither the array nor the
  /// bytes are copied.
  ///
  /// This default writes from the first non-empty piece only (one
  /// writeSome() of it); TcpSocket sends as many pieces as the system
  /// allows (IOV_MAX on POSIX) in one system call.
  virtual std::size_t writeSome(const ConstBuffer* buffers, std::size_t count, std::error_code& ec) noexcept;
  std::size_t writeSome(const ConstBuffer* buffers, std::size_t count);
  ///@}

  ///@{
  /// Reads exactly `size` bytes.  On error returns how many bytes were read
  /// before it (they are in `buffer`).
  std::size_t readExactly(void* buffer, std::size_t size, std::error_code& ec) noexcept;
  std::size_t readExactly(void* buffer, std::size_t size);
  ///@}

  ///@{
  /// Writes all `size` bytes.  On error returns how many were written.
  std::size_t writeAll(const void* buffer, std::size_t size, std::error_code& ec) noexcept;
  std::size_t writeAll(const void* buffer, std::size_t size);
  ///@}
  ///@{
  /// Keeps writeAll(nullptr, size) the single-buffer form.
  std::size_t writeAll(std::nullptr_t, std::size_t size, std::error_code& ec) noexcept {
    return writeAll(static_cast<const void*>(nullptr), size, ec);
  }
  std::size_t writeAll(std::nullptr_t, std::size_t size) { return writeAll(static_cast<const void*>(nullptr), size); }
  ///@}

  ///@{
  /// Gather write of everything: all the pieces' bytes, in order, through
  /// as many gather writeSome() calls as the stream needs.  On error
  /// returns how many bytes were written.  The errors, the empty pieces
  /// and an empty request are as for the gather writeSome(); a bad piece
  /// anywhere in the array fails the call before anything is written.
  ///
  /// Cost: the caller's array is never copied or changed.  After a write
  /// that ended inside a piece, the next call goes through a copy of at
  /// most 16 piece descriptors (256 bytes on the stack, never the data)
  /// that starts at the first unwritten byte.
  /// @par Example
  /// @code
  ///   socket.writeAll({{header.data(), header.size()}, {body.data(), body.size()}});
  /// @endcode
  std::size_t writeAll(const ConstBuffer* buffers, std::size_t count, std::error_code& ec) noexcept;
  std::size_t writeAll(const ConstBuffer* buffers, std::size_t count);
  std::size_t writeAll(std::initializer_list<ConstBuffer> buffers, std::error_code& ec) noexcept;
  std::size_t writeAll(std::initializer_list<ConstBuffer> buffers);
  ///@}

  /// Closes the stream and frees its resources.  Idempotent.
  virtual void close() noexcept = 0;
  /// True until close() (or a move from this object).
  virtual bool isOpen() const noexcept = 0;

  /// Who is at the other end, as the throwing forms name it
  /// ("127.0.0.1:8080", a shared-memory name); empty when unknown or closed.
  virtual std::string peerName() const;

  /// A count of the stream's cancel() calls (for one direction: reading,
  /// or writing when `writing`), for the steps of readExactly() and
  /// writeAll() to carry from their first step to their last.
  using CancelMark = std::uint64_t;

 protected:
  /// BufferedReader's readUntil() and peek() carry their mark down too.
  friend class BufferedReader;

  ///@{
  /// Cancellation across the steps of readExactly() and writeAll().  A
  /// stream whose cancel() ends the calls under way overrides all three:
  /// cancelMark() says where its cancel() history stands, and
  /// readSomeSince()/writeSomeSince() are readSome() and the gather
  /// writeSome() that end with operation_canceled, instead of waiting,
  /// once a cancel() came after `mark`.  readExactly() and writeAll() take
  /// the mark when they begin, so a cancel() that lands between two of
  /// their steps ends them too.  The defaults (no history; the plain
  /// calls) suit a stream without cancel().
  virtual CancelMark cancelMark(bool writing) const noexcept;
  virtual std::size_t readSomeSince(CancelMark mark, void* buffer, std::size_t size, std::error_code& ec) noexcept;
  virtual std::size_t writeSomeSince(CancelMark mark, const ConstBuffer* buffers, std::size_t count,
                                     std::error_code& ec) noexcept;
  ///@}

  ///@{
  /// For a stream layered on another (TlsStream on a socket), which carries
  /// its caller's mark down to every step it takes on the lower stream:
  /// the lower stream's cancelMark() and readSomeSince(), and writeAll()
  /// made of writeSomeSince() steps under `mark`.  (Protected access does
  /// not reach those through a Stream&.)
  static CancelMark cancelMarkOf(const Stream& lower, bool writing) noexcept;
  static std::size_t readSomeSinceOf(Stream& lower, CancelMark mark, void* buffer, std::size_t size,
                                     std::error_code& ec) noexcept;
  static std::size_t writeAllSinceOf(Stream& lower, CancelMark mark, const void* buffer, std::size_t size,
                                     std::error_code& ec) noexcept;
  ///@}

  Stream() = default;
  /// Copying is for implementations' own copy operations; Stream holds no
  /// state of its own.
  Stream(const Stream&) = default;
  /// As the copy constructor: copies nothing, Stream holds no state.
  Stream& operator=(const Stream&) = default;
};

}  // namespace evchan

#endif  // EVCHAN_STREAM_H
