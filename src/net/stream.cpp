// SPDX-License-Identifier: Apache-2.0
// Stream: the loops and throwing forms shared by every byte stream.
#include <algorithm>

#include <evchan/error.h>
#include <evchan/stream.h>
#include <evchan/system_error.h>

#include "net/closed_under_mark.h"
#include "net/pieces.h"

namespace evchan {
namespace {

// The checks readExactly/writeAll make before their first step, so that an
// empty request on a closed stream still reports not_open.  A close() since
// the call took its `mark` (or, for a layered stream's writeAll() on the
// lower one, the close() that closed both) came during the call.
std::error_code checkRequest(const Stream& stream, Stream::CancelMark mark, const void* buffer, std::size_t size) {
  if (!stream.isOpen()) return detail::closedUnderMark(mark);
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  return {};
}

// A gather call's checks: not_open first, as for one buffer.
std::error_code checkPieces(const Stream& stream, const ConstBuffer* buffers, std::size_t count) {
  if (!stream.isOpen()) return Errc::not_open;
  return detail::checkPieces(buffers, count);
}

// Where a gather writeAll() stands: piece `index`, `offset` bytes into it.
struct GatherPosition {
  std::size_t index = 0;
  std::size_t offset = 0;

  // Moves past `bytes` written, and past empty pieces, to the next byte to
  // write (index == count once there is none).
  void advance(const ConstBuffer* buffers, std::size_t count, std::size_t bytes) {
    while (index < count && bytes >= buffers[index].size - offset) {
      bytes -= buffers[index].size - offset;
      ++index;
      offset = 0;
    }
    if (index < count) offset += bytes;
  }
};

// Mid-piece resumption copies this many descriptors at most (see stream.h).
constexpr std::size_t kResumeWindow = 16;

// Repeats `some(at, left, ec)` (a readSome or writeSome) until `size`
// bytes are done or it fails; returns the bytes done either way.
template <class Byte, class Some>
std::size_t untilDone(const Stream& stream, Stream::CancelMark mark, Byte* buffer, std::size_t size, std::error_code& ec,
                      Some some) {
  if ((ec = checkRequest(stream, mark, buffer, size))) return 0;
  std::size_t done = 0;
  while (done < size) {
    done += some(buffer + done, size - done, ec);
    if (ec) break;
  }
  return done;
}

// The throwing form of an error-code call: SystemError naming the
// operation and the peer.
template <class Call>
std::size_t orThrow(const Stream& stream, const char* operation, Call call) {
  std::error_code ec;
  const std::size_t n = call(ec);
  throwIfError(ec, operation, stream.peerName());
  return n;
}

}  // namespace

std::string Stream::peerName() const { return {}; }

std::size_t Stream::readSome(void* buffer, std::size_t size) {
  return orThrow(*this, "read", [&](std::error_code& ec) { return readSome(buffer, size, ec); });
}

std::size_t Stream::writeSome(const void* buffer, std::size_t size) {
  return orThrow(*this, "write", [&](std::error_code& ec) { return writeSome(buffer, size, ec); });
}

Stream::CancelMark Stream::cancelMark(bool) const noexcept { return 0; }

std::size_t Stream::readSomeSince(CancelMark, void* buffer, std::size_t size, std::error_code& ec) noexcept {
  return readSome(buffer, size, ec);
}

std::size_t Stream::writeSomeSince(CancelMark, const ConstBuffer* buffers, std::size_t count,
                                   std::error_code& ec) noexcept {
  return writeSome(buffers, count, ec);
}

std::size_t Stream::readExactly(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const CancelMark mark = cancelMark(false);
  return untilDone(*this, mark, static_cast<char*>(buffer), size, ec, [this, mark](char* at, std::size_t left, std::error_code& e) {
    return readSomeSince(mark, at, left, e);
  });
}

std::size_t Stream::readExactly(void* buffer, std::size_t size) {
  return orThrow(*this, "read", [&](std::error_code& ec) { return readExactly(buffer, size, ec); });
}

std::size_t Stream::writeAll(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  return writeAllSinceOf(*this, cancelMark(true), buffer, size, ec);
}

Stream::CancelMark Stream::cancelMarkOf(const Stream& lower, bool writing) noexcept {
  return lower.cancelMark(writing);
}

std::size_t Stream::readSomeSinceOf(Stream& lower, CancelMark mark, void* buffer, std::size_t size,
                                    std::error_code& ec) noexcept {
  return lower.readSomeSince(mark, buffer, size, ec);
}

std::size_t Stream::writeAllSinceOf(Stream& lower, CancelMark mark, const void* buffer, std::size_t size,
                                    std::error_code& ec) noexcept {
  return untilDone(lower, mark, static_cast<const char*>(buffer), size, ec,
                   [&lower, mark](const char* at, std::size_t left, std::error_code& e) {
                     const ConstBuffer piece{at, left};
                     return lower.writeSomeSince(mark, &piece, 1, e);
                   });
}

std::size_t Stream::writeAll(const void* buffer, std::size_t size) {
  return orThrow(*this, "write", [&](std::error_code& ec) { return writeAll(buffer, size, ec); });
}

std::size_t Stream::writeSome(const ConstBuffer* buffers, std::size_t count, std::error_code& ec) noexcept {
  if ((ec = checkPieces(*this, buffers, count))) return 0;
  for (std::size_t i = 0; i < count; ++i) {
    if (buffers[i].size != 0) return writeSome(buffers[i].data, buffers[i].size, ec);
  }
  return 0;
}

std::size_t Stream::writeSome(const ConstBuffer* buffers, std::size_t count) {
  return orThrow(*this, "write", [&](std::error_code& ec) { return writeSome(buffers, count, ec); });
}

std::size_t Stream::writeAll(const ConstBuffer* buffers, std::size_t count, std::error_code& ec) noexcept {
  if ((ec = checkPieces(*this, buffers, count))) return 0;
  const CancelMark mark = cancelMark(true);
  std::size_t done = 0;
  GatherPosition at;
  at.advance(buffers, count, 0);
  while (at.index < count) {
    std::size_t wrote;
    if (at.offset == 0) {
      wrote = writeSomeSince(mark, buffers + at.index, count - at.index, ec);  // the caller's array as it is
    } else {
      // The first piece starts mid-way: a small copy with that piece trimmed.
      ConstBuffer window[kResumeWindow];
      const std::size_t pieces = std::min(kResumeWindow, count - at.index);
      std::copy(buffers + at.index, buffers + at.index + pieces, window);
      window[0].data = static_cast<const unsigned char*>(window[0].data) + at.offset;
      window[0].size -= at.offset;
      wrote = writeSomeSince(mark, window, pieces, ec);
    }
    if (ec) break;
    done += wrote;
    at.advance(buffers, count, wrote);
  }
  return done;
}

std::size_t Stream::writeAll(const ConstBuffer* buffers, std::size_t count) {
  return orThrow(*this, "write", [&](std::error_code& ec) { return writeAll(buffers, count, ec); });
}

std::size_t Stream::writeAll(std::initializer_list<ConstBuffer> buffers, std::error_code& ec) noexcept {
  return writeAll(buffers.begin(), buffers.size(), ec);
}

std::size_t Stream::writeAll(std::initializer_list<ConstBuffer> buffers) {
  return writeAll(buffers.begin(), buffers.size());
}

}  // namespace evchan
