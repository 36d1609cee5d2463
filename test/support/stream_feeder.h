// SPDX-License-Identifier: Apache-2.0
// A thread that keeps a stream's peer supplied with bytes, so that a
// reader at the other end always finds some waiting.
#ifndef EVCHAN_TEST_SUPPORT_STREAM_FEEDER_H
#define EVCHAN_TEST_SUPPORT_STREAM_FEEDER_H

#include <atomic>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/stream.h>

namespace evchan::test {

class StreamFeeder {
 public:
  /// Starts writing 16 KiB at a time to `stream` (blocking writes, on a
  /// thread of its own) until stop() or a write fails.
  explicit StreamFeeder(Stream& stream)
      : thread_([this, &stream] {
          std::vector<char> chunk(16 << 10, 'b');
          std::error_code ec;
          while (!stop_.load() && !ec) stream.writeAll(chunk.data(), chunk.size(), ec);
        }) {}
  ~StreamFeeder() { stop(); }
  StreamFeeder(const StreamFeeder&) = delete;
  StreamFeeder& operator=(const StreamFeeder&) = delete;

  /// Ends the writes and joins the thread.  A write waiting for room waits
  /// until the reader reads or closes its end (then fails), or times out.
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: started once stop_ exists
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_STREAM_FEEDER_H
