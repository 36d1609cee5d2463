// SPDX-License-Identifier: Apache-2.0
// Internal: the shared segment of a ShmStream connection and the two
// single-producer single-consumer byte rings in it.
//
// Layout (one memfd, sealed against shrinking and growing):
//   [0, 4096)                    SegmentHeader
//   [4096, 4096 + R)             ring 0 data: connecting side -> listening side
//   [4096 + R, 4096 + 2R)        ring 1 data: listening side -> connecting side
// R (ringSize) is a power of two, 4 KiB .. 1 GiB.
//
// Indices are running byte counts (they never wrap in practice: 2^64
// bytes); a position in the ring is count & (R - 1).  The producer alone
// advances `head`, the consumer alone `tail`; each keeps its own index
// privately and only ever reads the other's from the segment, so a peer
// scribbling on the header can lie about its own index but never make us
// touch memory outside the ring: every copy is masked by the private R.
#ifndef EVCHAN_SRC_LINUX_SHM_SEGMENT_H
#define EVCHAN_SRC_LINUX_SHM_SEGMENT_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <system_error>

namespace evchan::detail {

// The peer is another process: the indices must be real lock-free atomics
// (no hidden lock in our address space) to work across the mapping.
static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared ring indices need lock-free 64-bit atomics");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "shared ring flags need lock-free 32-bit atomics");

inline constexpr std::uint64_t kSegmentMagic = 0x314d48534e484345ull;  // "ECHNSHM1"
inline constexpr std::uint32_t kSegmentVersion = 1;
inline constexpr std::size_t kHeaderSize = 4096;
inline constexpr std::size_t kMinRingSize = 4096;
inline constexpr std::size_t kMaxRingSize = std::size_t{1} << 30;

/// Bits of RingIndices::producerFlags and consumerFlags.
inline constexpr std::uint32_t kSideClosed = 1;

/// One direction's indices, each side's on its own cache line.
struct RingIndices {
  alignas(64) std::atomic<std::uint64_t> head;  ///< bytes written (producer)
  std::atomic<std::uint32_t> producerFlags;     ///< kSideClosed: no more data will come
  std::atomic<std::uint32_t> producerWaiting;   ///< the producer sleeps for room
  alignas(64) std::atomic<std::uint64_t> tail;  ///< bytes consumed (consumer)
  std::atomic<std::uint32_t> consumerFlags;     ///< kSideClosed: nobody reads any more
  std::atomic<std::uint32_t> consumerWaiting;   ///< the consumer sleeps for data
};

struct SegmentHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t headerSize;
  std::uint64_t ringSize;
  std::uint64_t segmentSize;
  RingIndices rings[2];
};
static_assert(sizeof(SegmentHeader) <= kHeaderSize, "the header must fit its page");

/// The descriptor of a fresh segment, sealed and initialised, and its
/// mapping.  Released by the caller (close, unmapSegment).
struct Segment {
  int fd = -1;
  SegmentHeader* header = nullptr;
  std::size_t size = 0;      ///< of the mapping
  std::size_t ringSize = 0;  ///< validated; never re-read from the header
};

/// True for a ring size connect() accepts.
bool validRingSize(std::size_t ringSize) noexcept;

/// True when the fields before `rings` of `fields` (a private copy of what
/// the peer wrote) describe a segment of our version whose rings exactly
/// fill a mapping of `mappedSize` bytes.  Pure: no descriptor, no mapping.
bool validSegmentHeader(const SegmentHeader& fields, std::size_t mappedSize) noexcept;

/// Creates a sealed memfd segment with rings of `ringSize` bytes and maps
/// it.  On error returns a Segment with fd -1 and sets `ec`.
Segment createSegment(std::size_t ringSize, std::error_code& ec) noexcept;

/// Checks a segment received from a peer (sealed memfd, consistent size
/// and header) and maps it; takes ownership of `fd` (closed in all cases).
/// bad_message for anything inconsistent.
Segment adoptSegment(int fd, std::error_code& ec) noexcept;

void unmapSegment(Segment& segment) noexcept;

/// The bytes at `offset` of the mapping, for the rings' data.
inline unsigned char* segmentBytes(const Segment& segment, std::size_t offset) noexcept {
  return reinterpret_cast<unsigned char*>(segment.header) + offset;
}

/// The consuming end of a ring: our tail is private, the peer's head is
/// read from the segment and validated.
class RingReader {
 public:
  RingReader() = default;
  RingReader(RingIndices* indices, const unsigned char* data, std::uint64_t size) noexcept
      : indices_(indices), data_(data), mask_(size - 1) {}

  /// Bytes ready to read; protocol_error when the peer's head is impossible.
  std::uint64_t available(std::error_code& ec) noexcept;
  /// Copies up to `size` ready bytes and publishes the new tail.
  std::size_t read(void* buffer, std::size_t size, std::error_code& ec) noexcept;
  /// The ready bytes from the tail on, where they lie: at most `size`,
  /// and no further than the ring's end.  Consumes nothing; `*bytes` is
  /// set when the count is not 0.
  std::size_t peek(const unsigned char** bytes, std::size_t size, std::error_code& ec) noexcept;
  /// Consumes the first `n` bytes the last peek() showed and publishes the
  /// new tail; false, nothing consumed, when `n` is more than it showed.
  /// Each peek() may be consumed once.
  bool consume(std::size_t n) noexcept;
  RingIndices& indices() const noexcept { return *indices_; }

 private:
  RingIndices* indices_ = nullptr;
  const unsigned char* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t tail_ = 0;
  std::uint64_t seenHead_ = 0;
  std::size_t peeked_ = 0;  // what the last peek() showed, until consumed or read
};

/// The producing end of a ring: our head is private, the peer's tail is
/// read from the segment and validated.
class RingWriter {
 public:
  RingWriter() = default;
  RingWriter(RingIndices* indices, unsigned char* data, std::uint64_t size) noexcept
      : indices_(indices), data_(data), mask_(size - 1) {}

  /// Free bytes; protocol_error when the peer's tail is impossible.
  std::uint64_t room(std::error_code& ec) noexcept;
  /// Copies up to `size` bytes into free room and publishes the new head.
  std::size_t write(const void* buffer, std::size_t size, std::error_code& ec) noexcept;
  /// Free room from the head on, where it lies: at most `size`, and no
  /// further than the ring's end.  Publishes nothing; `*bytes` is set when
  /// the count is not 0.
  std::size_t reserve(unsigned char** bytes, std::size_t size, std::error_code& ec) noexcept;
  /// Publishes the first `n` bytes of the last reserve() as written; false,
  /// nothing published, when `n` is more than it reserved.  Each reserve()
  /// may be committed once.
  bool commit(std::size_t n) noexcept;
  RingIndices& indices() const noexcept { return *indices_; }

 private:
  RingIndices* indices_ = nullptr;
  unsigned char* data_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t head_ = 0;
  std::uint64_t seenTail_ = 0;
  std::size_t reserved_ = 0;  // what the last reserve() gave, until committed or written
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_LINUX_SHM_SEGMENT_H
