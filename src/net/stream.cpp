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

}  // namespace

std::string Stream::peerName() const { return {}; }

std::size_t Stream::readSome(void* buffer, std::size_t size) {
  std::error_code ec;
  const std::size_t n = readSome(buffer, size, ec);
  throwIfError(ec, "read", peerName());
  return n;
}

std::size_t Stream::writeSome(const void* buffer, std::size_t size) {
  std::error_code ec;
  const std::size_t n = writeSome(buffer, size, ec);
  throwIfError(ec, "write", peerName());
  return n;
}

std::size_t Stream::readExactly(void* buffer, std::size_t size, std::error_code& ec) noexcept {
  if ((ec = checkRequest(*this, buffer, size))) return 0;
  std::size_t done = 0;
  while (done < size) {
    done += readSome(static_cast<char*>(buffer) + done, size - done, ec);
    if (ec) break;
  }
  return done;
}

std::size_t Stream::readExactly(void* buffer, std::size_t size) {
  std::error_code ec;
  const std::size_t n = readExactly(buffer, size, ec);
  throwIfError(ec, "read", peerName());
  return n;
}

std::size_t Stream::writeAll(const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  if ((ec = checkRequest(*this, buffer, size))) return 0;
  std::size_t done = 0;
  while (done < size) {
    done += writeSome(static_cast<const char*>(buffer) + done, size - done, ec);
    if (ec) break;
  }
  return done;
}

std::size_t Stream::writeAll(const void* buffer, std::size_t size) {
  std::error_code ec;
  const std::size_t n = writeAll(buffer, size, ec);
  throwIfError(ec, "write", peerName());
  return n;
}

}  // namespace evchan
