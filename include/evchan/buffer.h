// SPDX-License-Identifier: Apache-2.0
// ConstBuffer: one piece of a gather write, and the step that moves a
// piece array past what a write took.
#ifndef EVCHAN_BUFFER_H
#define EVCHAN_BUFFER_H

#include <cstddef>

#include <evchan/export.h>

namespace evchan {

/// One piece of a gather write (Stream::writeSome() and writeAll() over
/// several buffers, a WriteEvent over several buffers): `size` bytes at
/// `data`.  An aggregate, so `ConstBuffer{header.data(), header.size()}`
/// makes one.  The caller owns the bytes and keeps them alive and
/// unchanged while a write uses them.  An empty piece (size 0, any data) is
/// skipped; a null `data` with a non-zero `size` is refused with
/// Errc::null_buffer by every call that takes pieces.
///
/// On POSIX hosts an array of ConstBuffer has the layout of an array of
/// struct iovec, so the kernel reads it where it is, without a copy.
struct EVCHAN_API ConstBuffer {
  /// First byte of the piece; may be null only when `size` is 0.
  const void* data = nullptr;
  /// Length of the piece in bytes; 0 makes an empty piece, skipped.
  std::size_t size = 0;
};

/// Moves a piece array past `bytes` that a write took: drops the pieces
/// written in full (and empty ones in front), and trims the first piece
/// written in part in place, so that (`buffers`, `count`) is what is left
/// to write (count 0 once everything was).  Use it to re-post a WriteEvent
/// over several buffers after a partial completion:
/// @code
///   consumeBuffers(pieces, count, write.bytesTransferred());
///   if (count > 0) { write.setBuffers(pieces, count); channel.post(write); }
/// @endcode
/// It writes into the array, so the array must be the caller's to change.
inline void consumeBuffers(ConstBuffer*& buffers, std::size_t& count, std::size_t bytes) noexcept {
  while (count > 0 && bytes >= buffers->size) {
    bytes -= buffers->size;
    ++buffers;
    --count;
  }
  if (count > 0) {
    buffers->data = static_cast<const unsigned char*>(buffers->data) + bytes;
    buffers->size -= bytes;
  }
}

}  // namespace evchan

#endif  // EVCHAN_BUFFER_H
