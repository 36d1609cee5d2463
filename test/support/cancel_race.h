// SPDX-License-Identifier: Apache-2.0
// cancel() racing a read that is completing, for any stream that has a
// cancel() (TcpSocket, ShmStream), read on a thread or in a task.
#ifndef EVCHAN_TEST_SUPPORT_CANCEL_RACE_H
#define EVCHAN_TEST_SUPPORT_CANCEL_RACE_H

#include <atomic>
#include <string>
#include <system_error>
#include <thread>

#include "support/diagnostics.h"
#include "support/waiting.h"

namespace evchan::test {

/// One byte a round ('a' + round % 26), written and the reader's wait
/// cancelled at once, in alternating order: every byte must arrive once
/// and in order, a cancelled read being retried.  Run read() where the
/// reader lives and writeAndCancel() on the test's thread, then check
/// `wrong` (empty) and `received` (== rounds) once the reader has ended.
struct CancelRace {
  explicit CancelRace(int roundCount) : rounds(roundCount) {}

  template <class Stream>
  void read(Stream& reader) {
    for (int round = 0; round < rounds;) {
      char byte;
      std::error_code ec;
      const std::size_t n = reader.readSome(&byte, 1, ec);
      if (ec == std::errc::operation_canceled) continue;
      if (ec || n != 1 || byte != static_cast<char>('a' + round % 26)) {
        wrong = "round " + std::to_string(round) + ": " + describe(ec);
        stopped = true;
        return;
      }
      received = ++round;
    }
  }

  template <class Writer, class Reader>
  void writeAndCancel(Writer& writer, Reader& reader) {
    for (int round = 0; round < rounds && !stopped.load(); ++round) {
      const char byte = static_cast<char>('a' + round % 26);
      if (round % 2 == 0) {
        writer.writeAll(&byte, 1);
        reader.cancel();
      } else {
        reader.cancel();
        writer.writeAll(&byte, 1);
      }
      if (!eventually([&] { return received.load() > round || stopped.load(); })) break;
      if (round % 100 == 0) std::this_thread::yield();
    }
  }

  const int rounds;
  std::atomic<int> received{0};
  std::atomic<bool> stopped{false};
  std::string wrong;  ///< the reader's until it has ended
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_CANCEL_RACE_H
