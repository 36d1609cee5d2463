// SPDX-License-Identifier: Apache-2.0
// Internal: what a ShmStream owns, and the handshake both ends share.
#ifndef EVCHAN_SRC_LINUX_SHM_CONNECTION_H
#define EVCHAN_SRC_LINUX_SHM_CONNECTION_H

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>

#include <evchan/duration.h>
#include <evchan/tcp_socket.h>

#include "linux/shm_segment.h"

namespace evchan::detail {

/// The first message on a new connection, carrying the segment's memfd
/// and the far end of the space doorbell (SCM_RIGHTS).
struct ShmHello {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t reserved;
};
inline constexpr std::uint64_t kHelloMagic = 0x4f4c4c454d485345ull;  // "ESHMHELO"

/// True for a hello of our protocol and version (the reserved field is
/// ignored, for later versions to use).
inline bool validHello(const ShmHello& hello) noexcept {
  return hello.magic == kHelloMagic && hello.version == kSegmentVersion;
}

/// How long one direction spins before it sleeps, adapted to how the
/// peer has answered so far (see spinUntil() in shm_stream.cpp).
struct AdaptiveSpin {
  std::int64_t budgetNs = 10000;  // a first guess: 10 us
  unsigned sleepsSinceProbe = 0;
};

/// Which ring each end reads: ring 0 carries the connecting side's data.
enum class ShmRole { Connecting, Listening };

/// One end of a connection: the mapped segment, our two ring ends, and the
/// two doorbells.  `dataBell` (the control connection) wakes our reader
/// when the peer wrote, and we ring it when we wrote; `spaceBell` (the
/// socketpair passed at connect) does the same for room in the rings.
/// Both read end of file when the peer's process is gone.
struct ShmConnection {
  /// Takes the segment and both sockets (closing them on failure).
  static std::unique_ptr<ShmConnection> make(Segment segment, ShmRole role, int dataBellFd, int spaceBellFd,
                                             const std::string& peer, std::error_code& ec) noexcept;
  ~ShmConnection();

  /// Ends the calls under way, reads and writes, with operation_canceled
  /// (cancel(), and close() before it waits for them).
  void cancelCalls() noexcept;

  Segment segment;  // unmapped last, after the bells are closed
  RingReader in;
  RingWriter out;
  int dataBellFd = -1;  // owned by dataBell
  int spaceBellFd = -1;
  TcpSocket dataBell;
  TcpSocket spaceBell;
  /// How many times cancelCalls() ran: a call's cancel mark.  A call about
  /// to sleep compares its mark and begins its call on the bell under
  /// `cancelLock`, which cancelCalls() holds from its count to its second
  /// bell: reads and writes sleep on different bells, yet one cancel() is
  /// one moment for both, and never ends a call begun after it.
  /// shutdownWrite() cancels spaceBell under it too, after setting its
  /// flag, which a write about to sleep checks there.  Lock order:
  /// cancelLock > the bells' WaitCancellation mutexes.
  std::atomic<std::uint64_t> cancels{0};
  std::mutex cancelLock;
  std::atomic<Duration> timeout{kInfiniteTimeout};  // set while calls read it
  std::string peer;
  // Each is touched by its own direction only (one reader, one writer).
  std::error_code readFailure;   // sticky: the peer broke the protocol
  std::error_code writeFailure;
  bool readPeerGone = false;     // dataBell read end of file
  bool writePeerGone = false;    // spaceBell read end of file
  // When a call that was about to time out last read its bell for the
  // peer's end (a poll with a zero timeout does, at most once a
  // millisecond: see peerGoneFromBell in shm_stream.cpp).
  std::chrono::steady_clock::time_point readBellLookedAt{};
  std::chrono::steady_clock::time_point writeBellLookedAt{};
  /// shutdownWrite() against the writes under way (any thread): the
  /// writes inside a put in the low bits, kWriteShut once shut.
  std::atomic<std::uint32_t> writeGate{0};
  static constexpr std::uint32_t kWriteShut = 1u << 31;
  AdaptiveSpin readSpin;
  AdaptiveSpin writeSpin;
  // The accepting side's space doorbell, by socket inode, while claimed
  // (see claimDoorbell); 0 on the connecting side.
  std::uint64_t heldDoorbell = 0;
};

/// Records that an accepted connection of this process holds the doorbell
/// socket `inode`, unless its far end `peerInode` (0: unknown) is one
/// already held: a client that split one socketpair over two connections,
/// whose death neither could then see; or unless `inode` itself is held
/// already (one end passed twice).  False (nothing recorded) then.
bool claimDoorbell(std::uint64_t inode, std::uint64_t peerInode) noexcept;
/// Forgets a doorbell claimDoorbell() recorded.
void releaseDoorbell(std::uint64_t inode) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_LINUX_SHM_CONNECTION_H
