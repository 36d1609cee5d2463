// SPDX-License-Identifier: Apache-2.0
// Internal: the check every gather write makes of its pieces.
#ifndef EVCHAN_SRC_NET_PIECES_H
#define EVCHAN_SRC_NET_PIECES_H

#include <cstddef>
#include <system_error>

#include <evchan/buffer.h>
#include <evchan/error.h>

namespace evchan::detail {

/// Errc::null_buffer for a null array with a non-zero count or a piece
/// with null data and a non-zero size, anywhere in the array; checked
/// before anything is written, so a refused call writes nothing.
inline std::error_code checkPieces(const ConstBuffer* buffers, std::size_t count) noexcept {
  if (buffers == nullptr && count != 0) return Errc::null_buffer;
  for (std::size_t i = 0; i < count; ++i) {
    if (buffers[i].data == nullptr && buffers[i].size != 0) return Errc::null_buffer;
  }
  return {};
}

/// Drops the empty pieces in front: what is left starts with a byte to
/// write, or is empty.
inline void skipEmptyPieces(const ConstBuffer*& buffers, std::size_t& count) noexcept {
  while (count > 0 && buffers->size == 0) {
    ++buffers;
    --count;
  }
}

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_NET_PIECES_H
