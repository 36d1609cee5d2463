// SPDX-License-Identifier: Apache-2.0
// cancel() racing a read that is completing, for any stream that has a
// cancel() (TcpSocket, ShmStream), read on a thread or in a task; and
// cancel() landing between the steps of a readExactly().
#ifndef EVCHAN_TEST_SUPPORT_CANCEL_RACE_H
#define EVCHAN_TEST_SUPPORT_CANCEL_RACE_H

#include <atomic>
#include <chrono>
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

/// cancel() landing between the two steps of a readExactly() of two
/// bytes.  Each round the reader parks in readExactly(); the test's thread
/// writes one byte, waits until the reader has taken it (its first step
/// is done or about to return) and cancels at once, so that the cancel()
/// comes before the second step, or just as it begins.  Every round must
/// end with operation_canceled after one byte; never by the stream's
/// timeout, which is how a cancel() lost between the steps shows.  Run
/// read() in a task and writeAndCancel() on the test's thread with
/// `parked` telling when the reader waits (allWorkersIdle() of its
/// channel) and `taken` when its byte was read; then set `stopped`,
/// cancel() until the reader ended, and check `wrong` and `finished`.
struct CancelBetweenSteps {
  explicit CancelBetweenSteps(int roundCount) : rounds(roundCount) {}

  template <class Stream>
  void read(Stream& reader) {
    for (int round = 0; round < rounds && !stopped.load(); ++round) {
      char two[2];
      std::error_code ec;
      started = round + 1;
      const std::size_t n = reader.readExactly(two, sizeof two, ec);
      if (ec != std::errc::operation_canceled || n != 1) {
        wrong = "round " + std::to_string(round) + ": " + std::to_string(n) + " bytes, " + describe(ec);
        stopped = true;
        return;
      }
      finished = round + 1;
    }
  }

  template <class Writer, class Reader, class Parked, class Taken>
  void writeAndCancel(Writer& writer, Reader& reader, Parked parked, Taken taken) {
    for (int round = 0; round < rounds; ++round) {
      if (!eventually([&] { return started.load() > round || stopped.load(); }) || stopped.load() || !parked()) {
        break;
      }
      writer.writeAll("x", 1);
      const auto giveUp = std::chrono::steady_clock::now() + generous(std::chrono::seconds(10));
      // Stopped: the reader's call ended without the byte (a wrong
      // result, or an early stop) and will not take it.
      while (!taken() && !stopped.load() && std::chrono::steady_clock::now() < giveUp) {
      }
      reader.cancel();
      if (!eventually([&] { return finished.load() > round || stopped.load(); })) break;
    }
  }

  const int rounds;
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  std::atomic<bool> stopped{false};
  std::string wrong;  ///< the reader's until it has ended
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_CANCEL_RACE_H
