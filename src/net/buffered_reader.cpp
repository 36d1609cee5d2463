// SPDX-License-Identifier: Apache-2.0
// BufferedReader: one buffer in front of a Stream, grown only as far as
// the caller's limits.
#include <evchan/buffered_reader.h>
#include <evchan/error.h>
#include <evchan/system_error.h>

#include <algorithm>
#include <cstring>

namespace evchan {

BufferedReader::BufferedReader(Stream& stream, std::size_t bufferSize)
    : stream_(stream), buffer_(std::max<std::size_t>(bufferSize, 1)) {}

std::string_view BufferedReader::buffered() const noexcept { return {buffer_.data() + begin_, size()}; }

std::error_code BufferedReader::fill(std::size_t wanted, Stream::CancelMark mark) noexcept {
  if (buffer_.size() - begin_ < wanted || end_ == buffer_.size()) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, size());
    end_ -= begin_;
    begin_ = 0;
  }
  if (buffer_.size() < wanted) {
    // Past max_size() resize() throws length_error, not bad_alloc (a
    // peek(SIZE_MAX)); this function is noexcept.
    if (wanted > buffer_.max_size()) return std::make_error_code(std::errc::not_enough_memory);
    try {
      buffer_.resize(wanted);
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
  }
  std::error_code ec;
  end_ += stream_.readSomeSince(mark, buffer_.data() + end_, buffer_.size() - end_, ec);
  return ec;
}

std::string BufferedReader::take(std::size_t count) {
  std::string bytes(buffer_.data() + begin_, count);
  begin_ += count;
  if (begin_ == end_) begin_ = end_ = 0;
  return bytes;
}

std::string BufferedReader::readUntil(std::string_view delimiter, std::size_t maxBytes, std::error_code& ec) {
  if (delimiter.empty() || maxBytes == 0) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }
  const Stream::CancelMark mark = stream_.cancelMark(false);
  std::size_t from = 0;  // where a delimiter may still start
  for (;;) {
    const std::string_view window = buffered().substr(0, maxBytes);
    const std::size_t at = window.find(delimiter, from);
    if (at != std::string_view::npos) {
      ec.clear();
      return take(at + delimiter.size());
    }
    if (window.size() == maxBytes) {
      ec = Errc::message_too_long;
      return {};
    }
    if (window.size() >= delimiter.size()) from = window.size() - delimiter.size() + 1;
    // Room for twice what is buffered (never past maxBytes): grown by one
    // byte instead, each further read of the stream would take one byte.
    if ((ec = fill(std::min(maxBytes, std::max(size() + 1, 2 * size())), mark))) return {};
  }
}

std::string BufferedReader::readLine(std::size_t maxBytes, std::error_code& ec) {
  std::string line = readUntil("\n", maxBytes, ec);
  if (!ec) {
    line.pop_back();
    if (!line.empty() && line.back() == '\r') line.pop_back();
  }
  return line;
}

std::string_view BufferedReader::peek(std::size_t atLeast, std::error_code& ec) {
  ec.clear();
  if (size() >= atLeast) return buffered();
  const Stream::CancelMark mark = stream_.cancelMark(false);
  while (size() < atLeast) {
    if ((ec = fill(atLeast, mark))) break;
  }
  return buffered();
}

void BufferedReader::consume(std::size_t count, std::error_code& ec) noexcept {
  if (count > size()) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return;
  }
  ec.clear();
  begin_ += count;
  if (begin_ == end_) begin_ = end_ = 0;
}

std::size_t BufferedReader::readSome(void* buffer, std::size_t count, std::error_code& ec) noexcept {
  if (size() == 0) return stream_.readSome(buffer, count, ec);  // nothing to copy twice
  if (buffer == nullptr && count != 0) {
    ec = Errc::null_buffer;
    return 0;
  }
  ec.clear();
  // A zero size returns 0 at once, as Stream::readSome() does: no memcpy
  // to a buffer that may be null (undefined even for no bytes).
  if (count == 0) return 0;
  const std::size_t n = std::min(count, size());
  std::memcpy(buffer, buffer_.data() + begin_, n);
  consume(n, ec);
  return n;
}

std::size_t BufferedReader::readExactly(void* buffer, std::size_t count, std::error_code& ec) noexcept {
  if (buffer == nullptr && count != 0) {
    ec = Errc::null_buffer;
    return 0;
  }
  const std::size_t fromBuffer = std::min(count, size());
  if (fromBuffer != 0) std::memcpy(buffer, buffer_.data() + begin_, fromBuffer);
  consume(fromBuffer, ec);
  if (fromBuffer == count) return count;
  return fromBuffer + stream_.readExactly(static_cast<char*>(buffer) + fromBuffer, count - fromBuffer, ec);
}

// The throwing forms.

std::string BufferedReader::readUntil(std::string_view delimiter, std::size_t maxBytes) {
  std::error_code ec;
  std::string bytes = readUntil(delimiter, maxBytes, ec);
  throwIfError(ec, "read until delimiter", stream_.peerName());
  return bytes;
}

std::string BufferedReader::readLine(std::size_t maxBytes) {
  std::error_code ec;
  std::string line = readLine(maxBytes, ec);
  throwIfError(ec, "read line", stream_.peerName());
  return line;
}

std::string_view BufferedReader::peek(std::size_t atLeast) {
  std::error_code ec;
  const std::string_view bytes = peek(atLeast, ec);
  throwIfError(ec, "peek", stream_.peerName());
  return bytes;
}

void BufferedReader::consume(std::size_t count) {
  std::error_code ec;
  consume(count, ec);
  throwIfError(ec, "consume", stream_.peerName());
}

std::size_t BufferedReader::readSome(void* buffer, std::size_t count) {
  std::error_code ec;
  const std::size_t n = readSome(buffer, count, ec);
  throwIfError(ec, "read", stream_.peerName());
  return n;
}

std::size_t BufferedReader::readExactly(void* buffer, std::size_t count) {
  std::error_code ec;
  const std::size_t n = readExactly(buffer, count, ec);
  throwIfError(ec, "read", stream_.peerName());
  return n;
}

}  // namespace evchan
