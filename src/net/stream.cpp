// SPDX-License-Identifier: Apache-2.0
// Stream: the loops and throwing forms shared by every byte stream.
#include <evchan/error.h>
#include <evchan/stream.h>
#include <evchan/system_error.h>

namespace evchan {
namespace {

// The checks readExactly/writeAll make before their first call, so that an
// empty request on a closed stream still reports not_open.
std::error_code checkRequest(const Stream& stream, const void* buffer, std::size_t size) {
  if (!stream.isOpen()) return Errc::not_open;
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  return {};
}

// Repeats `some(at, left, ec)` (a readSome or writeSome) until `size`
// bytes are done or it fails; returns the bytes done either way.
template <class Byte, class Some>
std::size_t untilDone(const Stream& stream, Byte* buffer, std::size_t size, std::error_code& ec, Some some) {
  if ((ec = checkRequest(stream, buffer, size))) return 0;
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

std::size_t Stream::readExactly(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  return untilDone(*this, static_cast<char*>(buffer), size, ec,
                   [this](char* at, std::size_t left, std::error_code& e) { return readSome(at, left, e); });
}

std::size_t Stream::readExactly(void* buffer, std::size_t size) {
  return orThrow(*this, "read", [&](std::error_code& ec) { return readExactly(buffer, size, ec); });
}

std::size_t Stream::writeAll(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  return untilDone(*this, static_cast<const char*>(buffer), size, ec,
                   [this](const char* at, std::size_t left, std::error_code& e) { return writeSome(at, left, e); });
}

std::size_t Stream::writeAll(const void* buffer, std::size_t size) {
  return orThrow(*this, "write", [&](std::error_code& ec) { return writeAll(buffer, size, ec); });
}

}  // namespace evchan
