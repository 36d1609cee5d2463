// SPDX-License-Identifier: Apache-2.0
// Internal: the two BIOs between OpenSSL and a TlsStream's buffers.
// OpenSSL reads records straight out of the block the lower stream was read
// into, and writes its records into a block the stream then sends as it
// is: a memory BIO would copy both ways (and zero what it grows into).
#ifndef EVCHAN_NET_TLS_BIO_H
#define EVCHAN_NET_TLS_BIO_H

#include <cstddef>
#include <memory>
#include <utility>

#include <openssl/bio.h>

namespace evchan::detail {

/// The bytes [begin, end) of a block of `capacity` bytes, which nothing
/// zeroes.  Moves leave the source empty.
struct TlsBytes {
  TlsBytes() = default;
  TlsBytes(TlsBytes&& other) noexcept { *this = std::move(other); }
  TlsBytes& operator=(TlsBytes&& other) noexcept {
    data = std::move(other.data);
    capacity = std::exchange(other.capacity, 0);
    begin = std::exchange(other.begin, 0);
    end = std::exchange(other.end, 0);
    return *this;
  }

  std::unique_ptr<unsigned char[]> data;
  std::size_t capacity = 0;
  std::size_t begin = 0;
  std::size_t end = 0;

  std::size_t size() const noexcept { return end - begin; }
  bool empty() const noexcept { return begin == end; }
  const unsigned char* front() const noexcept { return data.get() + begin; }
  void clear() noexcept { begin = end = 0; }
  /// Empties it, with room for at least `size` bytes from data; false
  /// without memory.
  bool reserveEmpty(std::size_t size) noexcept;
  /// Adds `size` bytes after what it holds; false without memory (then it
  /// holds what it held).
  bool append(const void* bytes, std::size_t size) noexcept;
};

/// A BIO through which OpenSSL reads `input`, taking what it read from
/// the front; when `input` is empty the read asks to be retried, as a
/// non-blocking socket's would, and it never reports an end.  Null
/// without memory.  `input` must outlive the BIO.
BIO* newTlsInputBio(TlsBytes& input) noexcept;

/// A BIO through which OpenSSL writes to the end of `output` (a write
/// without memory fails).  Null without memory.  `output` must outlive
/// the BIO.
BIO* newTlsOutputBio(TlsBytes& output) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_NET_TLS_BIO_H
