// SPDX-License-Identifier: Apache-2.0
// BufferedReader: lines, delimited messages and exact reads over any Stream,
// with a bound on how much a peer can make it hold.
#ifndef EVCHAN_BUFFERED_READER_H
#define EVCHAN_BUFFERED_READER_H

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <evchan/export.h>
#include <evchan/stream.h>

namespace evchan {

/// Reads from a Stream through a buffer, for protocols framed by
/// delimiters ("read until \r\n") or by lengths.  The reader borrows the
/// stream (which must outlive it) and reads it only; write to the stream
/// directly.  Every call reads the stream's readSome(), so inside a task a
/// wait suspends the task.
///
/// Limits: the buffer starts at `bufferSize` bytes and grows only as far as
/// a readUntil()/readLine() call's `maxBytes` or a peek()'s `atLeast`: a
/// peer that never sends the delimiter gets Errc::message_too_long, never
/// unbounded memory.  After message_too_long the bytes read so far stay
/// buffered (see buffered()); the caller may consume() them and go on, or
/// close the stream.  A peer that closes in the middle of a line gives
/// Errc::end_of_stream, with what it did send still buffered.
///
/// Cancellation: readUntil(), readLine() and peek() may read the stream
/// several times, and each is one call: the stream's cancel() (or close())
/// ends it even when it lands between two of those reads, with
/// std::errc::operation_canceled, as it ends a Stream::readExactly().  What
/// was read before stays buffered.
///
/// Errors are the stream's (timed_out, connection_reset, ...), plus
/// Errc::message_too_long, std::errc::invalid_argument for consume()
/// beyond what is buffered or a zero `maxBytes`, and
/// std::errc::not_enough_memory when the buffer cannot grow as far as
/// asked (a peek() of more than memory holds; what is buffered stays).
/// The throwing forms throw SystemError.  Thread safety: none; use one
/// reader from one task or thread at a time.
class EVCHAN_API BufferedReader {
 public:
  /// The initial buffer size when none is given: 16 KiB.
  static constexpr std::size_t kDefaultBufferSize = 16 * 1024;

  /// Reads `stream`, which must outlive the reader, through a buffer of
  /// `bufferSize` bytes at first (at least 1).  Reads nothing yet.
  explicit BufferedReader(Stream& stream, std::size_t bufferSize = kDefaultBufferSize);
  BufferedReader(const BufferedReader&) = delete;
  BufferedReader& operator=(const BufferedReader&) = delete;

  ///@{
  /// The bytes up to and including the first `delimiter` (not empty), at
  /// most `maxBytes` of them, delimiter included; they leave the buffer.
  /// On error returns an empty string and takes nothing from the buffer.
  std::string readUntil(std::string_view delimiter, std::size_t maxBytes, std::error_code& ec);
  std::string readUntil(std::string_view delimiter, std::size_t maxBytes);
  ///@}

  ///@{
  /// One line ending in "\n", returned without it and without a "\r"
  /// before it; `maxBytes` counts the line with its terminator.
  std::string readLine(std::size_t maxBytes, std::error_code& ec);
  std::string readLine(std::size_t maxBytes);
  ///@}

  ///@{
  /// Makes at least `atLeast` bytes buffered (reading as needed) and shows
  /// all that is buffered, without taking it; valid until the next call
  /// that reads.  A zero `atLeast` reads nothing and may show nothing.
  std::string_view peek(std::size_t atLeast, std::error_code& ec);
  std::string_view peek(std::size_t atLeast);
  ///@}

  ///@{
  /// Drops the first `size` buffered bytes (after a peek()).
  void consume(std::size_t size, std::error_code& ec) noexcept;
  void consume(std::size_t size);
  ///@}

  /// What is buffered now, without reading.
  std::string_view buffered() const noexcept;

  ///@{
  /// As Stream::readSome(), served from the buffer first: returns buffered
  /// bytes if there are any, else reads the stream once.
  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept;
  std::size_t readSome(void* buffer, std::size_t size);
  ///@}

  ///@{
  /// Exactly `size` bytes, the buffered ones first.  On error returns how
  /// many were copied into `buffer`.
  std::size_t readExactly(void* buffer, std::size_t size, std::error_code& ec) noexcept;
  std::size_t readExactly(void* buffer, std::size_t size);
  ///@}

  /// The stream this reader reads.
  Stream& stream() noexcept { return stream_; }

 private:
  std::size_t size() const noexcept { return end_ - begin_; }
  /// Reads the stream once into the free space, making room for at least
  /// `wanted` buffered bytes in all: a step of a call that began at `mark`
  /// (Stream::cancelMark()), which a cancel() since then ends.
  std::error_code fill(std::size_t wanted, Stream::CancelMark mark) noexcept;
  std::string take(std::size_t size);

  Stream& stream_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;  // the buffered bytes are [begin_, end_)
  std::size_t end_ = 0;
};

}  // namespace evchan

#endif  // EVCHAN_BUFFERED_READER_H
