// SPDX-License-Identifier: Apache-2.0
// Fuzz target: BufferedReader over an in-memory Stream that hands out the
// fuzz input in fuzz-chosen chunk sizes, driven by a fuzz-chosen sequence
// of calls.  Invariants after every call:
//   * the bytes the reader returned, then the bytes it holds, are exactly
//     the bytes the stream fed it, in order (nothing lost, duplicated or
//     reordered);
//   * it never holds more than its initial buffer or the largest limit a
//     call allowed (maxBytes, peek's atLeast): a peer cannot make it grow;
//   * readUntil() returns at most maxBytes, ending at the first delimiter;
//     message_too_long only when the first maxBytes bytes hold none;
//   * end_of_stream only once the stream is exhausted.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <evchan/buffered_reader.h>
#include <evchan/error.h>
#include <evchan/stream.h>

#include "fuzz_check.h"

namespace {

// Serves `data` in chunks of the sizes in `chunks` (cycled; 0 means a
// whole remaining read), then end_of_stream.
class ChunkedStream final : public evchan::Stream {
 public:
  ChunkedStream(std::string data, std::vector<std::size_t> chunks)
      : data_(std::move(data)), chunks_(std::move(chunks)) {}

  std::size_t readSome(void* buffer, std::size_t size, std::error_code& ec) noexcept override {
    if (buffer == nullptr && size != 0) {
      ec = evchan::Errc::null_buffer;
      return 0;
    }
    if (size == 0) {
      ec.clear();
      return 0;
    }
    if (fed_ == data_.size()) {
      ec = evchan::Errc::end_of_stream;
      return 0;
    }
    std::size_t chunk = chunks_.empty() ? 0 : chunks_[next_++ % chunks_.size()];
    if (chunk == 0) chunk = data_.size();
    const std::size_t n = std::min({size, chunk, data_.size() - fed_});
    std::copy_n(data_.data() + fed_, n, static_cast<char*>(buffer));
    fed_ += n;
    ec.clear();
    return n;
  }
  std::size_t writeSome(const void*, std::size_t, std::error_code& ec) noexcept override {
    ec = std::make_error_code(std::errc::operation_not_supported);
    return 0;
  }
  void close() noexcept override {}
  bool isOpen() const noexcept override { return true; }

  std::string_view fed() const { return std::string_view(data_).substr(0, fed_); }
  bool exhausted() const { return fed_ == data_.size(); }

 private:
  std::string data_;
  std::vector<std::size_t> chunks_;
  std::size_t fed_ = 0;
  std::size_t next_ = 0;
};

// What the caller has received so far must be the fed bytes' prefix.
struct Ledger {
  const ChunkedStream& stream;
  std::size_t returned = 0;  // bytes handed to the caller
  std::size_t limit;         // the largest buffer the reader may need

  // Checks that `bytes` are the next ones of the stream, and counts them.
  void took(std::string_view bytes) {
    FUZZ_CHECK(stream.fed().substr(returned, bytes.size()) == bytes);
    returned += bytes.size();
  }
  void check(const evchan::BufferedReader& reader) const {
    const std::string_view held = reader.buffered();
    FUZZ_CHECK(returned + held.size() == stream.fed().size());
    FUZZ_CHECK(stream.fed().substr(returned) == held);
    FUZZ_CHECK(held.size() <= limit);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const std::size_t bufferSize = input.ConsumeIntegralInRange<std::size_t>(0, 64);
  std::vector<std::size_t> chunks(input.ConsumeIntegralInRange<std::size_t>(0, 8));
  for (std::size_t& chunk : chunks) chunk = input.ConsumeIntegralInRange<std::size_t>(0, 40);
  const std::string delimiters[] = {"\n", "\r\n", "ab", "xyz", std::string(1, '\0')};
  // The calls come from the back of the input (ConsumeIntegral does), the
  // stream's bytes from the front.
  const std::size_t calls = input.ConsumeIntegralInRange<std::size_t>(0, 64);
  std::vector<std::uint32_t> program;
  for (std::size_t i = 0; i < calls && input.remaining_bytes() > 0; ++i) program.push_back(input.ConsumeIntegral<std::uint32_t>());
  ChunkedStream stream(input.ConsumeRemainingBytesAsString(), std::move(chunks));
  evchan::BufferedReader reader(stream, bufferSize);
  Ledger ledger{stream, 0, std::max<std::size_t>(bufferSize, 1)};

  for (const std::uint32_t op : program) {
    const std::size_t amount = (op >> 8) % 300;
    std::error_code ec;
    switch (op % 7) {
      case 0:
      case 1: {  // readUntil
        const std::string& delimiter = delimiters[(op >> 4) % 5];
        const std::size_t maxBytes = amount + 1;
        ledger.limit = std::max(ledger.limit, maxBytes);
        const std::string bytes = reader.readUntil(delimiter, maxBytes, ec);
        if (!ec) {
          FUZZ_CHECK(bytes.size() <= maxBytes && bytes.size() >= delimiter.size());
          FUZZ_CHECK(bytes.compare(bytes.size() - delimiter.size(), delimiter.size(), delimiter) == 0);
          FUZZ_CHECK(bytes.find(delimiter) == bytes.size() - delimiter.size());
          ledger.took(bytes);
        } else if (ec == evchan::Errc::message_too_long) {
          FUZZ_CHECK(bytes.empty());
          const std::string_view held = reader.buffered();
          FUZZ_CHECK(held.size() >= maxBytes);
          FUZZ_CHECK(held.substr(0, maxBytes).find(delimiter) == std::string_view::npos);
        } else {
          FUZZ_CHECK(ec == evchan::Errc::end_of_stream && stream.exhausted() && bytes.empty());
        }
        break;
      }
      case 2: {  // readLine
        const std::size_t maxBytes = amount + 1;
        ledger.limit = std::max(ledger.limit, maxBytes);
        const std::string line = reader.readLine(maxBytes, ec);
        if (!ec) {
          const std::string_view next = stream.fed().substr(ledger.returned);
          const bool crlf = next.substr(0, line.size() + 2) == line + "\r\n";
          FUZZ_CHECK(crlf || next.substr(0, line.size() + 1) == line + "\n");
          ledger.took(crlf ? line + "\r\n" : line + "\n");
          FUZZ_CHECK(line.size() + (crlf ? 2 : 1) <= maxBytes);
        } else {
          FUZZ_CHECK(ec == evchan::Errc::message_too_long || (ec == evchan::Errc::end_of_stream && stream.exhausted()));
        }
        break;
      }
      case 3: {  // peek, then consume some of it
        ledger.limit = std::max(ledger.limit, amount);
        const std::string_view view = reader.peek(amount, ec);
        FUZZ_CHECK(view == reader.buffered());
        if (!ec) {
          FUZZ_CHECK(view.size() >= amount);
        } else {
          FUZZ_CHECK(ec == evchan::Errc::end_of_stream && stream.exhausted() && view.size() < amount);
        }
        const std::size_t drop = view.empty() ? 0 : (op >> 4) % (view.size() + 1);
        const std::string dropped(view.substr(0, drop));
        reader.consume(drop, ec);
        FUZZ_CHECK(!ec);
        ledger.took(dropped);
        break;
      }
      case 4: {  // consume more than is held: refused, nothing taken
        const std::size_t held = reader.buffered().size();
        reader.consume(held + 1 + amount, ec);
        FUZZ_CHECK(ec == std::errc::invalid_argument && reader.buffered().size() == held);
        break;
      }
      case 5: {  // readSome
        std::string buffer(amount, '\0');
        const std::size_t n = reader.readSome(buffer.data(), amount, ec);
        if (!ec) {
          FUZZ_CHECK(n <= amount && (n > 0 || amount == 0));
        } else {
          FUZZ_CHECK(n == 0 && ec == evchan::Errc::end_of_stream && stream.exhausted());
        }
        ledger.took(std::string_view(buffer).substr(0, n));
        break;
      }
      case 6: {  // readExactly
        std::string buffer(amount, '\0');
        const std::size_t n = reader.readExactly(buffer.data(), amount, ec);
        FUZZ_CHECK(n <= amount);
        FUZZ_CHECK(ec ? (ec == evchan::Errc::end_of_stream && stream.exhausted()) : n == amount);
        ledger.took(std::string_view(buffer).substr(0, n));
        break;
      }
    }
    ledger.check(reader);
  }
  return 0;
}
