// SPDX-License-Identifier: Apache-2.0
// Fuzz target: what a ShmStream trusts of its peer.  The peer process owns
// the segment's header and the indices it publishes; everything here is
// fed hostile values:
//   * the segment header (validSegmentHeader) against a mapping size: an
//     accepted header must describe rings that fit the mapping exactly;
//   * the hello (validHello): only our magic and version pass;
//   * the ring indices: a RingWriter and a RingReader share one ring, and
//     between their steps the "peer" may overwrite the index it owns with
//     any value.  Every copy must stay inside the ring (ASan watches the
//     ring's exact allocation), no call may report more room or data than
//     the ring holds, and while the peer has not lied the reader must get
//     exactly the bytes written, in order.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_check.h"
#include "linux/shm_connection.h"
#include "linux/shm_segment.h"

namespace {

using evchan::detail::RingIndices;
using evchan::detail::RingReader;
using evchan::detail::RingWriter;

void checkHeader(FuzzedDataProvider& input) {
  evchan::detail::SegmentHeader fields{};
  const auto bytes = input.ConsumeBytes<unsigned char>(offsetof(evchan::detail::SegmentHeader, rings));
  if (!bytes.empty()) std::memcpy(static_cast<void*>(&fields), bytes.data(), bytes.size());
  // Half the time a well-formed header with fuzzed fields, so that the
  // fuzzer reaches the size checks without guessing the magic.
  if (input.ConsumeBool()) {
    fields.magic = evchan::detail::kSegmentMagic;
    fields.version = evchan::detail::kSegmentVersion;
    fields.headerSize = evchan::detail::kHeaderSize;
  }
  const std::size_t mappedSize = input.ConsumeBool() ? static_cast<std::size_t>(fields.segmentSize)
                                                     : input.ConsumeIntegral<std::size_t>();
  if (evchan::detail::validSegmentHeader(fields, mappedSize)) {
    FUZZ_CHECK(evchan::detail::validRingSize(static_cast<std::size_t>(fields.ringSize)));
    FUZZ_CHECK(fields.ringSize <= mappedSize / 2);
    FUZZ_CHECK(evchan::detail::kHeaderSize + 2 * fields.ringSize == mappedSize);
  }
  evchan::detail::ShmHello hello{};
  const auto helloBytes = input.ConsumeBytes<unsigned char>(sizeof hello);
  if (!helloBytes.empty()) std::memcpy(&hello, helloBytes.data(), helloBytes.size());
  if (input.ConsumeBool()) hello.magic = evchan::detail::kHelloMagic;
  if (evchan::detail::validHello(hello)) {
    FUZZ_CHECK(hello.magic == evchan::detail::kHelloMagic);
    FUZZ_CHECK(hello.version == evchan::detail::kSegmentVersion);
  }
}

unsigned char streamByte(std::uint64_t offset) { return static_cast<unsigned char>(offset * 131 + (offset >> 8)); }

void checkRing(FuzzedDataProvider& input) {
  const std::uint64_t ringSize = std::uint64_t{1} << input.ConsumeIntegralInRange(0, 8);  // 1 .. 256 bytes
  // Exactly the ring, on the heap, so that ASan sees any copy past it.
  std::unique_ptr<unsigned char[]> ring(new unsigned char[ringSize]);
  auto indices = std::make_unique<RingIndices>();
  // Both sides may start from any common count (indices never reset).
  const std::uint64_t start = input.ConsumeBool() ? input.ConsumeIntegral<std::uint64_t>() : 0;
  indices->head.store(start);
  indices->tail.store(start);
  RingWriter writer(indices.get(), ring.get(), ringSize);
  RingReader reader(indices.get(), ring.get(), ringSize);
  // The writer and reader keep their own counts from 0; an offset start
  // is a lie to both until they catch up, which is what a start is.
  bool peerLied = start != 0;
  std::uint64_t written = 0, read = 0;
  std::vector<unsigned char> buffer(ringSize * 2 + 1);
  while (input.remaining_bytes() > 0) {
    const std::size_t size = input.ConsumeIntegralInRange<std::size_t>(0, buffer.size());
    std::error_code ec;
    switch (input.ConsumeIntegralInRange(0, 4)) {
      case 0: {
        for (std::size_t i = 0; i < size; ++i) buffer[i] = streamByte(written + i);
        const std::size_t n = writer.write(buffer.data(), size, ec);
        FUZZ_CHECK(n <= size && n <= ringSize);
        FUZZ_CHECK(!ec || n == 0);
        written += n;
        break;
      }
      case 1: {
        const std::size_t n = reader.read(buffer.data(), size, ec);
        FUZZ_CHECK(n <= size && n <= ringSize);
        FUZZ_CHECK(!ec || n == 0);
        if (!peerLied) {
          FUZZ_CHECK(!ec);
          FUZZ_CHECK(read + n <= written);
          for (std::size_t i = 0; i < n; ++i) FUZZ_CHECK(buffer[i] == streamByte(read + i));
        }
        read += n;
        break;
      }
      case 2: {  // the hostile consumer: any tail
        indices->tail.store(input.ConsumeIntegral<std::uint64_t>());
        peerLied = true;
        const std::uint64_t room = writer.room(ec);
        FUZZ_CHECK(room <= ringSize);
        break;
      }
      case 3: {  // the hostile producer: any head
        indices->head.store(input.ConsumeIntegral<std::uint64_t>());
        peerLied = true;
        const std::uint64_t available = reader.available(ec);
        FUZZ_CHECK(available <= ringSize);
        break;
      }
      case 4: {  // honest checks: never more than the ring
        const std::uint64_t room = writer.room(ec);
        FUZZ_CHECK(room <= ringSize);
        if (!peerLied) FUZZ_CHECK(!ec && room == ringSize - (written - read));
        const std::uint64_t available = reader.available(ec);
        FUZZ_CHECK(available <= ringSize);
        if (!peerLied) FUZZ_CHECK(!ec && available == written - read);
        break;
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  if (input.ConsumeBool()) {
    checkHeader(input);
  } else {
    checkRing(input);
  }
  return 0;
}
