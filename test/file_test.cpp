// SPDX-License-Identifier: Apache-2.0
// Tests of File (positioned reads and writes) and of FileReadEvent /
// FileWriteEvent, on the backends that perform file IO themselves (aio,
// io_uring, iocp) and on those that hand it to a worker the pool counts as
// blocked (epoll, apr_pollset).
#include <cppunit/extensions/HelperMacros.h>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif
#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <evchan/evchan.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "support/diagnostics.h"
#include "support/host_behaviour.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/named_suite.h"
#include "support/race_scheduling.h"
#include "support/skip.h"
#include "support/temp_path.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Backend;
using evchan::Errc;
using evchan::Event;
using evchan::EventChannel;
using evchan::File;
using evchan::FileReadEvent;
using evchan::FileWriteEvent;
using evchan::SystemError;
using evchan::TaskHandle;
using evchan::test::checksum;
using evchan::test::describe;
using evchan::test::fillPattern;
using evchan::test::kChecksumSeed;
using evchan::test::TempPath;

#if !defined(_WIN32)
// Opens the other end of the named pipe at `path`, which an open() of it
// for `mode` (one direction) waits for, and closes it again: that open()
// returns.
void openOtherEnd(const std::string& path, unsigned mode) {
  const int fd = ::open(path.c_str(), ((mode & evchan::kFileWrite) != 0 ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC);
  if (fd >= 0) ::close(fd);
}
#endif

std::vector<char> pattern(std::size_t size, std::uint64_t offset) {
  std::vector<char> bytes(size);
  fillPattern(bytes.data(), size, offset);
  return bytes;
}

// Keeps a channel's worker busy in a DispatchEvent until release() (or
// the end of the scope): on a one-thread channel nothing else runs on a
// worker meanwhile.
class HeldWorker {
 public:
  explicit HeldWorker(EventChannel& channel)
      : hold_([this] {
          running_ = true;
          while (!released_) std::this_thread::yield();
        }) {
    hold_.setCallback([this](Event&) { back_ = true; });
    channel.post(hold_);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return running_.load(); }));
  }
  ~HeldWorker() {
    release();
    evchan::test::eventually([&] { return back_.load(); });
  }
  HeldWorker(const HeldWorker&) = delete;
  HeldWorker& operator=(const HeldWorker&) = delete;

  void release() { released_ = true; }

 private:
  std::atomic<bool> running_{false}, released_{false}, back_{false};
  evchan::DispatchEvent hold_;
};

}  // namespace


template <Backend B>
class FileTest : public evchan::test::LeakCheckedFixture {
  EVCHAN_TEST_SUITE_NAMED(FileTest, suiteName());
  CPPUNIT_TEST(testWriteAndReadBackOnAThread);
  CPPUNIT_TEST(testReadBeyondTheEndIsShortNotAnError);
  CPPUNIT_TEST(testTasksReadAndWriteConcurrently);
  CPPUNIT_TEST(testFileEventsViaGetEvent);
  CPPUNIT_TEST(testFileEventsViaCallbacks);
  CPPUNIT_TEST(testPostRejectsBadFileEvents);
  CPPUNIT_TEST(testPostRefusesOffsetsBeyondOffT);
  CPPUNIT_TEST(testCallsRefuseOffsetsBeyondOffTAsPostDoes);
  CPPUNIT_TEST(testOpenErrors);
  CPPUNIT_TEST(testCallsOnAClosedFile);
  CPPUNIT_TEST(testCloseWhileThreadsAndTasksReadAndWrite);
  CPPUNIT_TEST(testCloseFromACancelledTaskOnTheReadersWorker);
  CPPUNIT_TEST(testShutdownWithFileEventsInFlight);
  CPPUNIT_TEST(testPostRacingShutdown);
  CPPUNIT_TEST(testManyChannelsAtOnce);
  CPPUNIT_TEST(testOnlyRegularFilesOpen);
  CPPUNIT_TEST(testPathWithANulIsRefused);
  CPPUNIT_TEST(testManyEventsAtDifferentOffsets);
  CPPUNIT_TEST(testOffsetsBeyond4GiB);
  CPPUNIT_TEST(testShutdownRacingCompletionsExactlyOnce);
  CPPUNIT_TEST(testCloseWithEventsInFlight);
  CPPUNIT_TEST(testKernelReadsWithoutAWorker);
  CPPUNIT_TEST(testFileTheBackendCannotReopenRunsOnAWorker);
  CPPUNIT_TEST_SUITE_END();

 public:
  static std::string suiteName() { return std::string("FileTest<") + evchan::backendName(B) + ">"; }

  // 1 MiB at 0 and 1 MiB at 5 MiB (a hole between): size, contents, sync.
  void testWriteAndReadBackOnAThread() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    const std::vector<char> first = pattern(1 << 20, 0), second = pattern(1 << 20, 5 << 20);
    CPPUNIT_ASSERT_EQUAL(first.size(), file.writeAt(0, first.data(), first.size()));
    CPPUNIT_ASSERT_EQUAL(second.size(), file.writeAt(5 << 20, second.data(), second.size()));
    file.sync();
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(6 << 20), file.size());
    std::vector<char> back(1 << 20);
    CPPUNIT_ASSERT_EQUAL(back.size(), file.readAt(0, back.data(), back.size()));
    CPPUNIT_ASSERT(back == first);
    CPPUNIT_ASSERT_EQUAL(back.size(), file.readAt(5 << 20, back.data(), back.size()));
    CPPUNIT_ASSERT(back == second);
    CPPUNIT_ASSERT_EQUAL(back.size(), file.readAt(2 << 20, back.data(), back.size()));
    CPPUNIT_ASSERT(std::all_of(back.begin(), back.end(), [](char c) { return c == 0; }));  // the hole
    CPPUNIT_ASSERT_EQUAL(path.str(), file.path());
  }

  void testReadBeyondTheEndIsShortNotAnError() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    file.writeAt(0, "0123456789", 10);
    char buffer[32];
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t(4), file.readAt(6, buffer, sizeof buffer, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::string("6789"), std::string(buffer, 4));
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(10, buffer, sizeof buffer, ec));
    CPPUNIT_ASSERT(!ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(1ull << 40, buffer, sizeof buffer, ec));
    CPPUNIT_ASSERT(!ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(0, buffer, 0, ec));  // nothing asked, nothing read
    CPPUNIT_ASSERT(!ec);
  }

  // 16 tasks on one worker each write and read back their own 256 KiB
  // region: the contents are right, and on a backend that completes file
  // IO itself the tasks suspended (the pool never needed a second thread).
  void testTasksReadAndWriteConcurrently() {
    std::unique_ptr<EventChannel> channel = createChannel(1, /*monitor=*/false);
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    constexpr std::size_t kRegion = 256 * 1024;
    std::atomic<int> good{0};
    std::vector<TaskHandle> tasks;
    for (int i = 0; i < 16; ++i) {
      std::error_code ec;
      tasks.push_back(channel->spawn([&, i] {
        const std::uint64_t offset = std::uint64_t(i) * kRegion;
        const std::vector<char> mine = pattern(kRegion, offset);
        file.writeAt(offset, mine.data(), mine.size());
        evchan::this_task::yield();
        std::vector<char> back(kRegion);
        if (file.readAt(offset, back.data(), back.size()) == kRegion && back == mine) ++good;
      }, evchan::TaskOptions(), ec));
      if (ec == std::errc::function_not_supported) EVCHAN_SKIP("this build has no tasks");
      CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    }
    for (TaskHandle& task : tasks) evchan::test::joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(16, good.load());
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(16 * kRegion), file.size());
    if (B == Backend::Aio || B == Backend::IoUring || B == Backend::Iocp) {
      CPPUNIT_ASSERT_EQUAL(1, channel->poolStats().peak);
    }
  }

  void testFileEventsViaGetEvent() {
    std::unique_ptr<EventChannel> channel = createChannel();
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    const std::vector<char> data = pattern(64 * 1024, 4096);
    FileWriteEvent write(file, 4096, data.data(), data.size());
    channel->post(write);
    CPPUNIT_ASSERT(channel->getEvent(8s) == &write);
    CPPUNIT_ASSERT_MESSAGE(describe(write.error()), !write.error());
    CPPUNIT_ASSERT_EQUAL(data.size(), write.bytesTransferred());
    std::vector<char> back(data.size() + 100);
    FileReadEvent read(file, 4096, back.data(), back.size());
    channel->post(read);
    CPPUNIT_ASSERT(channel->getEvent(8s) == &read);
    CPPUNIT_ASSERT_MESSAGE(describe(read.error()), !read.error());
    CPPUNIT_ASSERT_EQUAL(data.size(), read.bytesTransferred());  // short: the end of the file
    CPPUNIT_ASSERT(std::equal(data.begin(), data.end(), back.begin()));
    // Re-posted at the end of the file: 0 bytes, no error.
    read.set(4096 + data.size(), back.data(), back.size());
    channel->post(read);
    CPPUNIT_ASSERT(channel->getEvent(8s) == &read);
    CPPUNIT_ASSERT(!read.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), read.bytesTransferred());
  }

  // 64 reads of 4 KiB in flight at once, each completed on a worker.
  void testFileEventsViaCallbacks() {
    std::unique_ptr<EventChannel> channel = createChannel();
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    const std::vector<char> data = pattern(64 * 4096, 0);
    file.writeAt(0, data.data(), data.size());
    std::vector<std::vector<char>> buffers(64, std::vector<char>(4096));
    std::vector<std::unique_ptr<FileReadEvent>> reads;
    std::atomic<int> right{0}, done{0};
    for (int i = 0; i < 64; ++i) {
      const int block = (i * 37) % 64;  // out of order
      reads.push_back(std::make_unique<FileReadEvent>(file, block * 4096, buffers[i].data(), 4096));
      reads.back()->setCallback([&, block, i](Event& event) {
        auto& read = static_cast<FileReadEvent&>(event);
        if (!read.error() && read.bytesTransferred() == 4096 &&
            std::equal(buffers[i].begin(), buffers[i].end(), data.begin() + block * 4096)) {
          ++right;
        }
        ++done;
      });
    }
    for (auto& read : reads) channel->post(*read);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return done.load() == 64; }));
    CPPUNIT_ASSERT_EQUAL(64, right.load());
  }

  void testPostRejectsBadFileEvents() {
    std::unique_ptr<EventChannel> channel = createChannel();
    File closed;
    char byte = 0;
    FileReadEvent onClosed(closed, 0, &byte, 1);
    assertRejected(*channel, onClosed, Errc::not_open);
    TempPath path;
    File file = File::open(path.str(), evchan::kFileWrite | evchan::kFileCreate);
    FileWriteEvent nullBuffer(file, 0, nullptr, 16);
    assertRejected(*channel, nullBuffer, Errc::null_buffer);
    channel->shutdown();
    FileWriteEvent afterShutdown(file, 0, &byte, 1);
    assertRejected(*channel, afterShutdown, Errc::channel_shut_down);
  }

  // Offsets of 2^63 and above do not fit off_t: every backend refuses them
  // at post() alike (io_uring and aio cannot submit them; epoll, poll and
  // select used to complete them with EINVAL instead).  Below 2^63 an
  // offset is posted like any other: a read far beyond the end finds it.
  void testPostRefusesOffsetsBeyondOffT() {
    std::unique_ptr<EventChannel> channel = createChannel();
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    char byte = 'x';
    for (std::uint64_t offset : {std::uint64_t(1) << 63, (std::uint64_t(1) << 63) + 4096, ~std::uint64_t(0)}) {
      FileReadEvent read(file, offset, &byte, 1);
      std::error_code ec;
      channel->post(read, ec);
      CPPUNIT_ASSERT_MESSAGE("read at " + std::to_string(offset) + ": " + describe(ec),
                             ec == std::errc::invalid_argument);
      CPPUNIT_ASSERT(!read.inFlight());
      FileWriteEvent write(file, offset, &byte, 1);
      channel->post(write, ec);
      CPPUNIT_ASSERT_MESSAGE("write at " + std::to_string(offset) + ": " + describe(ec),
                             ec == std::errc::invalid_argument);
      CPPUNIT_ASSERT(!write.inFlight());
    }
    FileReadEvent largest(file, std::uint64_t(1) << 62, &byte, 1);
    channel->post(largest);
    const auto patience = std::chrono::duration_cast<evchan::Duration>(evchan::test::generous(std::chrono::seconds(8)));
    CPPUNIT_ASSERT(channel->getEvent(patience) == &largest);
    CPPUNIT_ASSERT_MESSAGE(describe(largest.error()), !largest.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), largest.bytesTransferred());
  }

  // readAt() and writeAt() refuse the offsets post() refuses, on a thread
  // and in a task, whatever the size: a 0-byte call at 2^64 - 1 used to
  // return ok where the same event's post() was std::errc::invalid_argument.
  void testCallsRefuseOffsetsBeyondOffTAsPostDoes() {
    std::unique_ptr<EventChannel> channel = createChannel(1);
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    auto check = [&file](const std::string& where) {
      char byte = 'x';
      for (std::uint64_t offset : {std::uint64_t(1) << 63, ~std::uint64_t(0)}) {
        for (std::size_t size : {std::size_t(0), std::size_t(1)}) {
          const std::string what = where + " at " + std::to_string(offset) + ", " + std::to_string(size) + " bytes";
          std::error_code ec;
          CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(offset, &byte, size, ec));
          CPPUNIT_ASSERT_MESSAGE("read " + what + ": " + describe(ec), ec == std::errc::invalid_argument);
          CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.writeAt(offset, &byte, size, ec));
          CPPUNIT_ASSERT_MESSAGE("write " + what + ": " + describe(ec), ec == std::errc::invalid_argument);
          CPPUNIT_ASSERT_THROW(file.readAt(offset, &byte, size), SystemError);
        }
      }
      std::error_code ec;
      CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(INT64_MAX, &byte, 0, ec));  // the last offset that fits
      CPPUNIT_ASSERT_MESSAGE(where + ": " + describe(ec), !ec);
      CPPUNIT_ASSERT_EQUAL(std::size_t(0), file.readAt(std::uint64_t(1) << 62, &byte, 1, ec));  // far beyond the end
      CPPUNIT_ASSERT_MESSAGE(where + ": " + describe(ec), !ec);
    };
    check("on a thread");
    std::string failure;
    std::error_code ec;
    evchan::TaskHandle task = channel->spawn(
        [&] {
          try {
            check("in a task");
          } catch (const CppUnit::Exception& e) {
            failure = e.what();
          }
        },
        evchan::TaskOptions(), ec);
    if (ec == std::errc::function_not_supported) EVCHAN_SKIP("on a thread: passed; in a task: this build has no tasks");
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    task.join();
    CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(0), file.size());
  }

  void testOpenErrors() {
    TempPath missing;
    std::error_code ec;
    File file = File::open(missing.str(), evchan::kFileRead, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::no_such_file_or_directory);
    CPPUNIT_ASSERT(!file.isOpen());
    file = File::open(missing.str(), 0, ec);
    CPPUNIT_ASSERT(ec == std::errc::invalid_argument);
    file = File::open("", evchan::kFileRead, ec);
    CPPUNIT_ASSERT(ec == std::errc::invalid_argument);
    file = File::open(std::filesystem::temp_directory_path().string(), evchan::kFileRead, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::is_a_directory);
    file = File::open(missing.str(), evchan::kFileWrite | evchan::kFileCreate | evchan::kFileExclusive, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec && file.isOpen());
    File again = File::open(missing.str(), evchan::kFileWrite | evchan::kFileCreate | evchan::kFileExclusive, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::file_exists);
    try {
      File::open(missing.str() + "-absent", evchan::kFileRead);
      CPPUNIT_FAIL("opening a missing file did not throw");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT(e.code() == std::errc::no_such_file_or_directory);
      CPPUNIT_ASSERT_MESSAGE(e.what(), std::string(e.what()).find("-absent") != std::string::npos);
    }
  }

  void testCallsOnAClosedFile() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileWrite | evchan::kFileCreate);
    file.close();
    file.close();  // idempotent
    char byte = 0;
    std::error_code ec;
    file.readAt(0, &byte, 1, ec);
    CPPUNIT_ASSERT(ec == Errc::not_open);
    file.writeAt(0, &byte, 1, ec);
    CPPUNIT_ASSERT(ec == Errc::not_open);
    file.size(ec);
    CPPUNIT_ASSERT(ec == Errc::not_open);
    file.sync(ec);
    CPPUNIT_ASSERT(ec == Errc::not_open);
    CPPUNIT_ASSERT_THROW(file.readAt(0, &byte, 1), SystemError);
    CPPUNIT_ASSERT(file.path().empty());
  }

  // close() from another thread while threads and tasks are in readAt()
  // and writeAt() (file.h: safe; the calls under way finish, later ones
  // are not_open): each call either moved all its bytes, correctly, or
  // ended with not_open, and nothing touches the closed descriptor
  // (LeakCheckedFixture also counts the descriptors).  Before close() was
  // made safe it freed the state under the callers: ASan saw
  // heap-use-after-free.  Twenty rounds, for the race.
  void testCloseWhileThreadsAndTasksReadAndWrite() {
    std::unique_ptr<EventChannel> channel = createChannel(2);
    constexpr std::size_t kBlock = 64 * 1024;
    const std::vector<char> data = pattern(kBlock, 0);
    for (int round = 0; round < 20; ++round) {
      TempPath path;
      File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
      file.writeAt(0, data.data(), data.size());
      struct Caller {
        std::atomic<int> calls{0};
        std::atomic<int> wrong{0};
        std::error_code last;
      };
      std::array<Caller, 6> callers;  // 0-1 threads reading, 2 a thread writing, 3-5 tasks
      // Each caller loops until a call fails; a read must bring the whole
      // block back intact, a write must write it all.
      const auto loop = [&](Caller& me, bool write) {
        std::vector<char> back(kBlock);
        std::error_code ec;
        for (;;) {
          const std::size_t n = write ? file.writeAt(kBlock, data.data(), kBlock, ec)
                                      : file.readAt(0, back.data(), kBlock, ec);
          if (ec) break;
          if (n != kBlock || (!write && back != data)) ++me.wrong;
          ++me.calls;
        }
        me.last = ec;
      };
      std::vector<std::thread> threads;
      for (int i = 0; i < 3; ++i) threads.emplace_back([&, i] { loop(callers[i], i == 2); });
      std::vector<TaskHandle> tasks;
      bool haveTasks = true;
      for (int i = 3; i < 6; ++i) {
        std::error_code ec;
        TaskHandle task = channel->spawn([&, i] { loop(callers[i], i == 5); }, evchan::TaskOptions(), ec);
        if (ec == std::errc::function_not_supported) {
          haveTasks = false;
          break;
        }
        CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
        tasks.push_back(std::move(task));
      }
      const std::size_t active = haveTasks ? callers.size() : 3;
      CPPUNIT_ASSERT(evchan::test::eventually([&] {
        for (std::size_t i = 0; i < active; ++i) {
          if (callers[i].calls < 3) return false;
        }
        return true;
      }));
      file.close();
      CPPUNIT_ASSERT(!file.isOpen());
      CPPUNIT_ASSERT(file.path().empty());
      for (std::thread& thread : threads) thread.join();
      for (TaskHandle& task : tasks) evchan::test::joinWithin(task);
      for (std::size_t i = 0; i < active; ++i) {
        const std::string who = "round " + std::to_string(round) + ", caller " + std::to_string(i);
        CPPUNIT_ASSERT_MESSAGE(who + ": " + describe(callers[i].last), callers[i].last == Errc::not_open);
        CPPUNIT_ASSERT_EQUAL_MESSAGE(who + ": calls that moved wrong bytes", 0, callers[i].wrong.load());
      }
      file.close();  // again: nothing left to do
    }
  }

  // close() from a task on a one-worker channel while another task on
  // that worker is in readAt(): close() must let the worker run the reader
  // (and poll for its completion on aio/io_uring) while it waits, and a
  // cancel() of the closing task must not cut the wait short (it would
  // leave the descriptor open under the reader, or spin the only worker).
  void testCloseFromACancelledTaskOnTheReadersWorker() {
    std::unique_ptr<EventChannel> channel = createChannel(1, /*monitor=*/false);
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    constexpr std::size_t kBlock = 256 * 1024;
    const std::vector<char> data = pattern(kBlock, 0);
    file.writeAt(0, data.data(), data.size());
    std::atomic<int> reads{0}, wrong{0};
    std::error_code readerEnd;
    std::error_code ec;
    TaskHandle reader = channel->spawn([&] {
      std::vector<char> back(kBlock);
      std::error_code error;
      for (;;) {
        const std::size_t n = file.readAt(0, back.data(), kBlock, error);
        if (error) break;
        if (n != kBlock || back != data) ++wrong;
        ++reads;
      }
      readerEnd = error;
    }, evchan::TaskOptions(), ec);
    if (ec == std::errc::function_not_supported) EVCHAN_SKIP("this build has no tasks");
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    std::atomic<bool> closed{false};
    TaskHandle closer = channel->spawn([&] {
      while (reads < 5) evchan::this_task::yield();
      file.close();
      closed = true;
    });
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return reads >= 5; }));
    closer.cancel();  // before, during or after its close(): the close completes
    try {
      evchan::test::joinWithin(closer);
    } catch (const SystemError& e) {
      // Cancelled in its yield loop, before close() began: close here.
      CPPUNIT_ASSERT_MESSAGE(e.what(), e.code() == std::errc::operation_canceled);
      CPPUNIT_ASSERT(!closed);
      file.close();
    }
    evchan::test::joinWithin(reader);
    CPPUNIT_ASSERT(!file.isOpen());
    CPPUNIT_ASSERT_MESSAGE(describe(readerEnd), readerEnd == Errc::not_open);
    CPPUNIT_ASSERT_EQUAL(0, wrong.load());
  }

  // A shutdown with 200 file events in flight: every one comes back, done
  // or cancelled, before shutdown() returns.
  void testShutdownWithFileEventsInFlight() {
    std::unique_ptr<EventChannel> channel = createChannel(2);
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    const std::vector<char> data = pattern(200 * 4096, 0);
    file.writeAt(0, data.data(), data.size());
    std::vector<std::vector<char>> buffers(200, std::vector<char>(4096));
    std::vector<std::unique_ptr<FileReadEvent>> reads;
    std::atomic<int> back{0}, odd{0};
    for (int i = 0; i < 200; ++i) {
      reads.push_back(std::make_unique<FileReadEvent>(file, i * 4096, buffers[i].data(), 4096));
      reads.back()->setCallback([&](Event& event) {
        const auto& read = static_cast<FileReadEvent&>(event);
        if (read.error() ? read.error() != std::errc::operation_canceled : read.bytesTransferred() != 4096) ++odd;
        ++back;
      });
      channel->post(*reads.back());
    }
    channel->shutdown();
    CPPUNIT_ASSERT_EQUAL(200, back.load());
    CPPUNIT_ASSERT_EQUAL(0, odd.load());
    for (auto& read : reads) CPPUNIT_ASSERT(!read->inFlight());
  }

  // Known bug: a post() that had passed the shutdown check when a
  // shutdown() on another thread ended the poller went on to use it
  // (postFileEvent asked the poller first) and crashed.  To make that race
  // land, the test runs on one CPU and the posting thread under
  // SCHED_IDLE: the shutdown preempts it wherever it is, and it runs again
  // mostly once the shutdown is over.  Each post must either succeed (its
  // event comes back) or fail with channel_shut_down.
  void testPostRacingShutdown() {
#ifndef __linux__
    EVCHAN_SKIP("needs Linux's CPU affinity and SCHED_IDLE");
#else
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    file.writeAt(0, "0123456789", 10);
    evchan::test::OneCpu oneCpu;  // the channel's workers and the poster inherit it
    // Bounded in time too: on a loaded machine an idle-class thread barely
    // runs, and the rounds get slow (never a failure).
    const auto budgetEnd = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (int round = 0; round < 200 && std::chrono::steady_clock::now() < budgetEnd; ++round) {
      std::unique_ptr<EventChannel> channel = createChannel(1, /*monitor=*/false);
      constexpr int kEvents = 4000;
      std::vector<std::unique_ptr<FileReadEvent>> reads;
      std::vector<char> buffers(kEvents * 10);
      std::atomic<int> back{0}, posted{0};
      for (int i = 0; i < kEvents; ++i) {
        reads.push_back(std::make_unique<FileReadEvent>(file, 0, &buffers[i * 10], 10));
        reads.back()->setCallback([&](Event&) { ++back; });
      }
      std::error_code refused;
      std::atomic<bool> running{false};
      std::thread poster([&] {
        evchan::test::becomeIdlePriority();  // best effort
        running = true;
        for (auto& read : reads) {
          std::error_code ec;
          channel->post(*read, ec);
          if (ec) {
            refused = ec;
            break;
          }
          ++posted;
        }
      });
      while (!running.load()) std::this_thread::yield();
      std::this_thread::sleep_for(std::chrono::microseconds(200 + 50 * (round % 20)));  // it posts meanwhile
      channel->shutdown();
      sched_param normal{};
      pthread_setschedparam(poster.native_handle(), SCHED_OTHER, &normal);  // to finish its loop promptly
      poster.join();
      CPPUNIT_ASSERT_MESSAGE(describe(refused), !refused || refused == Errc::channel_shut_down);
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return back.load() == posted.load(); }));
      for (auto& read : reads) CPPUNIT_ASSERT(!read->inFlight());
    }
#endif
  }

  // 30 channels alive at once, each with a read in flight: more than the
  // 20 helper threads glibc's aio starts, so one held per channel would
  // leave the last ones waiting forever.
  void testManyChannelsAtOnce() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    file.writeAt(0, "0123456789", 10);
    std::vector<std::unique_ptr<EventChannel>> channels;
    for (int i = 0; i < 30; ++i) channels.push_back(createChannel(1));
    std::vector<std::array<char, 4>> buffers(channels.size());
    std::vector<std::unique_ptr<FileReadEvent>> reads;
    for (std::size_t i = 0; i < channels.size(); ++i) {
      reads.push_back(std::make_unique<FileReadEvent>(file, i % 7, buffers[i].data(), 4));
      channels[i]->post(*reads.back());
    }
    for (std::size_t i = 0; i < channels.size(); ++i) {
      CPPUNIT_ASSERT_MESSAGE("channel " + std::to_string(i), channels[i]->getEvent(8s) == reads[i].get());
      CPPUNIT_ASSERT_EQUAL(std::size_t(4), reads[i]->bytesTransferred());
      CPPUNIT_ASSERT_EQUAL(std::string("0123456789").substr(i % 7, 4), std::string(buffers[i].data(), 4));
    }
  }

  // Reads of a pipe or a terminal may wait forever: they are refused.  A
  // named pipe is refused before it is opened: open() itself would wait
  // for the other end when only one direction is asked for.  Before, an
  // open for reading only waited until the test's own writer came, after
  // its limit, and only then failed.
  void testOnlyRegularFilesOpen() {
#if !defined(_WIN32)
    TempPath fifo;
    CPPUNIT_ASSERT_EQUAL(0, ::mkfifo(fifo.str().c_str(), 0600));
    for (const unsigned mode : {unsigned{evchan::kFileRead}, unsigned{evchan::kFileWrite},
                                unsigned{evchan::kFileRead | evchan::kFileWrite}}) {
      std::error_code ec;
      File pipe;
      const bool returned = evchan::test::finishesWithin(3s, [&] { pipe = File::open(fifo.str(), mode, ec); },
                                                         [&] { openOtherEnd(fifo.str(), mode); });
      CPPUNIT_ASSERT_MESSAGE("File::open() of a named pipe waited for its other end (mode " + std::to_string(mode) + ")",
                             returned);
      CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::invalid_argument);
      CPPUNIT_ASSERT(!pipe.isOpen());
    }
    if (!std::filesystem::exists("/dev/null")) EVCHAN_SKIP("no /dev/null on this host");
    const char* const devices[] = {"/dev/null"};
#else
    // Windows' device names, which exist in every directory: before,
    // each opened (a read of a serial port then waited for ever).
    const char* const devices[] = {"NUL", "nul", "NUL:", "\\\\.\\NUL"};
#endif
    for (const char* name : devices) {
      std::error_code ec;
      File device = File::open(name, evchan::kFileRead, ec);
      CPPUNIT_ASSERT_MESSAGE(std::string(name) + ": " + describe(ec), ec == std::errc::invalid_argument);
      CPPUNIT_ASSERT(!device.isOpen());
    }
  }

  // A NUL ends the path for the OS: the file opened (made) would be the one
  // the part before it names.  Refused instead; before, it made that file.
  void testPathWithANulIsRefused() {
    TempPath path;
    const std::string withNul = path.str() + std::string("\0.other", 7);
    std::error_code ec;
    File file = File::open(withNul, evchan::kFileWrite | evchan::kFileCreate, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == std::errc::invalid_argument);
    CPPUNIT_ASSERT(!file.isOpen());
    CPPUNIT_ASSERT_MESSAGE("a file was made at the part before the NUL", !std::filesystem::exists(path.str()));
  }

  // 256 writes of 4 KiB, each at its own offset, all in flight at once on
  // one file, then 256 reads of them back in another order: every event
  // moves its own bytes (on iocp, each is an overlapped call with its own
  // offset on the one handle).
  void testManyEventsAtDifferentOffsets() {
    std::unique_ptr<EventChannel> channel = createChannel(2);
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    constexpr int kBlocks = 256;
    constexpr std::size_t kBlock = 4096;
    const std::vector<char> data = pattern(kBlocks * kBlock, 0);
    std::atomic<int> right{0}, done{0};
    std::vector<std::unique_ptr<FileWriteEvent>> writes;
    for (int i = 0; i < kBlocks; ++i) {
      const int block = (i * 97) % kBlocks;
      writes.push_back(std::make_unique<FileWriteEvent>(file, block * kBlock, &data[block * kBlock], kBlock));
      writes.back()->setCallback([&](Event& event) {
        const auto& write = static_cast<FileWriteEvent&>(event);
        if (!write.error() && write.bytesTransferred() == kBlock) ++right;
        ++done;
      });
    }
    for (auto& write : writes) channel->post(*write);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return done.load() == kBlocks; }));
    CPPUNIT_ASSERT_EQUAL(kBlocks, right.load());
    CPPUNIT_ASSERT_EQUAL(std::uint64_t(kBlocks * kBlock), file.size());
    std::vector<std::vector<char>> buffers(kBlocks, std::vector<char>(kBlock));
    std::vector<std::unique_ptr<FileReadEvent>> reads;
    right = 0;
    done = 0;
    for (int i = 0; i < kBlocks; ++i) {
      const int block = (i * 61) % kBlocks;
      reads.push_back(std::make_unique<FileReadEvent>(file, block * kBlock, buffers[i].data(), kBlock));
      reads.back()->setCallback([&, block, i](Event& event) {
        const auto& read = static_cast<FileReadEvent&>(event);
        if (!read.error() && read.bytesTransferred() == kBlock &&
            std::equal(buffers[i].begin(), buffers[i].end(), data.begin() + block * kBlock)) {
          ++right;
        }
        ++done;
      });
    }
    for (auto& read : reads) channel->post(*read);
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return done.load() == kBlocks; }));
    CPPUNIT_ASSERT_EQUAL(kBlocks, right.load());
  }

  // An offset's high 32 bits reach the kernel (OVERLAPPED::OffsetHigh on
  // Windows): a read at 4 GiB + 2 of a 10-byte file finds its end, where
  // one that dropped them would read "23456789"; a byte written at 4 GiB +
  // 5 makes the file 4 GiB + 6 long and reads back from there.
  void testOffsetsBeyond4GiB() {
    std::unique_ptr<EventChannel> channel = createChannel();
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    file.writeAt(0, "0123456789", 10);
    constexpr std::uint64_t k4GiB = std::uint64_t(1) << 32;
    char buffer[16] = {};
    FileReadEvent read(file, k4GiB + 2, buffer, sizeof buffer);
    channel->post(read);
    CPPUNIT_ASSERT(channel->getEvent(patience()) == &read);
    CPPUNIT_ASSERT_MESSAGE(describe(read.error()), !read.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(0), read.bytesTransferred());
    const std::string why = evchan::test::whyWritingFarBeyondTheEndIsCostly();
    if (!why.empty()) EVCHAN_SKIP(why);
    FileWriteEvent write(file, k4GiB + 5, "x", 1);
    channel->post(write);
    CPPUNIT_ASSERT(channel->getEvent(patience()) == &write);
    CPPUNIT_ASSERT_MESSAGE(describe(write.error()), !write.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(1), write.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(k4GiB + 6, file.size());
    read.set(k4GiB + 4, buffer, sizeof buffer);
    channel->post(read);
    CPPUNIT_ASSERT(channel->getEvent(patience()) == &read);
    CPPUNIT_ASSERT_MESSAGE(describe(read.error()), !read.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(2), read.bytesTransferred());
    CPPUNIT_ASSERT_EQUAL(std::string(1, '\0') + "x", std::string(buffer, 2));
    char low[5];
    CPPUNIT_ASSERT_EQUAL(sizeof low, file.readAt(5, low, sizeof low));  // the first bytes stay where they were
    CPPUNIT_ASSERT_EQUAL(std::string("56789"), std::string(low, sizeof low));
  }

  // Shutdown right after posting reads and writes, twenty times: the
  // shutdown's cancellation races their completions (on iocp, CancelIoEx
  // on each operation Windows still has).  Each event comes back exactly
  // once, either done in full (a read with its bytes) or cancelled.
  void testShutdownRacingCompletionsExactlyOnce() {
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    constexpr int kEvents = 64;
    constexpr std::size_t kBlock = 16 * 1024;
    const std::vector<char> data = pattern(2 * kEvents * kBlock, 0);
    file.writeAt(0, data.data(), data.size());
    for (int round = 0; round < 20; ++round) {
      std::unique_ptr<EventChannel> channel = createChannel(2);
      std::vector<std::vector<char>> buffers(kEvents, std::vector<char>(kBlock));
      std::vector<std::unique_ptr<Event>> events;
      std::vector<std::atomic<int>> backs(2 * kEvents);
      std::atomic<int> wrong{0};
      for (int i = 0; i < kEvents; ++i) {
        auto read = std::make_unique<FileReadEvent>(file, i * kBlock, buffers[i].data(), kBlock);
        read->setCallback([&, i](Event& event) {
          const auto& r = static_cast<FileReadEvent&>(event);
          const bool whole = !r.error() && r.bytesTransferred() == kBlock &&
                             std::equal(buffers[i].begin(), buffers[i].end(), data.begin() + i * kBlock);
          if (!whole && r.error() != std::errc::operation_canceled) ++wrong;
          ++backs[i];
        });
        events.push_back(std::move(read));
        // The writes put back what is there: a read never sees other bytes.
        const std::size_t at = (kEvents + i) * kBlock;
        auto write = std::make_unique<FileWriteEvent>(file, at, &data[at], kBlock);
        write->setCallback([&, i](Event& event) {
          const auto& w = static_cast<FileWriteEvent&>(event);
          if (w.error() ? w.error() != std::errc::operation_canceled : w.bytesTransferred() != kBlock) ++wrong;
          ++backs[kEvents + i];
        });
        events.push_back(std::move(write));
      }
      for (auto& event : events) channel->post(*event);
      channel->shutdown();
      for (std::size_t i = 0; i < backs.size(); ++i) {
        CPPUNIT_ASSERT_EQUAL_MESSAGE("round " + std::to_string(round) + ", event " + std::to_string(i), 1,
                                     backs[i].load());
      }
      CPPUNIT_ASSERT_EQUAL(0, wrong.load());
      for (auto& event : events) CPPUNIT_ASSERT(!event->inFlight());
    }
  }

  // close() with reads posted and not yet handed back (the channel's one
  // worker is held): it returns once no read can touch its buffer any
  // more.  Each read the kernel did had its bytes in the buffer when
  // close() returned; the others end with not_open; and no buffer changes
  // after close() returned (they are overwritten then, and must stay so).
  void testCloseWithEventsInFlight() {
    if (B == Backend::Aio || B == Backend::IoUring)
      EVCHAN_SKIP("close() does not wait for posted file events on aio and io_uring (file.h)");
    constexpr int kReads = 64;
    constexpr std::size_t kBlock = 4096;
    const std::vector<char> data = pattern(kReads * kBlock, 0);
    for (int round = 0; round < 10; ++round) {
      std::unique_ptr<EventChannel> channel = createChannel(1, /*monitor=*/false, /*maxThreads=*/1);
      TempPath path;
      File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
      file.writeAt(0, data.data(), data.size());
      std::vector<std::vector<char>> buffers(kReads, std::vector<char>(kBlock, 0));
      std::vector<std::unique_ptr<FileReadEvent>> reads;
      std::atomic<int> back{0};
      {
        HeldWorker held(*channel);
        for (int i = 0; i < kReads; ++i) {
          reads.push_back(std::make_unique<FileReadEvent>(file, i * kBlock, buffers[i].data(), kBlock));
          reads.back()->setCallback([&](Event&) { ++back; });
          channel->post(*reads.back());
        }
        file.close();
        std::vector<bool> filled(kReads);
        for (int i = 0; i < kReads; ++i) {
          filled[i] = std::equal(buffers[i].begin(), buffers[i].end(), data.begin() + i * kBlock);
          const bool untouched = std::all_of(buffers[i].begin(), buffers[i].end(), [](char c) { return c == 0; });
          CPPUNIT_ASSERT_MESSAGE("read " + std::to_string(i) + " was part-way when close() returned",
                                 filled[i] || untouched);
          std::fill(buffers[i].begin(), buffers[i].end(), '\x5a');
        }
        held.release();
        CPPUNIT_ASSERT(evchan::test::eventually([&] { return back.load() == kReads; }));
        for (int i = 0; i < kReads; ++i) {
          const std::string which = "round " + std::to_string(round) + ", read " + std::to_string(i);
          CPPUNIT_ASSERT_MESSAGE(which + " touched its buffer after close()",
                                 std::all_of(buffers[i].begin(), buffers[i].end(), [](char c) { return c == '\x5a'; }));
          if (filled[i]) {
            CPPUNIT_ASSERT_MESSAGE(which + ": " + describe(reads[i]->error()), !reads[i]->error());
            CPPUNIT_ASSERT_EQUAL(kBlock, reads[i]->bytesTransferred());
          } else {
            CPPUNIT_ASSERT_MESSAGE(which + ": " + describe(reads[i]->error()), reads[i]->error() == Errc::not_open);
          }
        }
      }
      // On iocp every read was the kernel's, done before close() returned.
      if (B == Backend::Iocp) {
        for (auto& read : reads) CPPUNIT_ASSERT(!read->error());
      }
    }
  }

  // A backend that performs file IO itself does it with no worker free:
  // the channel's only worker is held, yet the read's bytes arrive (its
  // completion waits for the worker).
  void testKernelReadsWithoutAWorker() {
    if (B != Backend::Iocp && B != Backend::Aio)
      EVCHAN_SKIP("file IO here needs a worker (epoll, apr_pollset) or a polling thread to submit it (io_uring)");
    std::unique_ptr<EventChannel> channel = createChannel(1, /*monitor=*/false, /*maxThreads=*/1);
    TempPath path;
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    const std::vector<char> data = pattern(64 * 1024, 0);
    file.writeAt(0, data.data(), data.size());
    std::vector<char> buffer(data.size());
    FileReadEvent read(file, 0, buffer.data(), buffer.size());
    std::atomic<bool> back{false};
    read.setCallback([&](Event&) { back = true; });
    {
      HeldWorker held(*channel);
      channel->post(read);
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return buffer == data; }));
      CPPUNIT_ASSERT(!back.load());
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return back.load(); }));
    CPPUNIT_ASSERT_MESSAGE(describe(read.error()), !read.error());
    CPPUNIT_ASSERT_EQUAL(data.size(), read.bytesTransferred());
  }

  // iocp reopens a file for overlapped IO; where Windows refuses (a file
  // deleted while open) or Wine does (a file renamed: it reopens by name),
  // the file's events run on a worker instead, and still complete.  With
  // the only worker held, a read of an ordinary file arrives (the
  // kernel's) while one of the renamed, deleted file waits (the worker's);
  // then reads, writes and a task's calls on it all complete.
  void testFileTheBackendCannotReopenRunsOnAWorker() {
    if (B != Backend::Iocp) EVCHAN_SKIP("only the iocp backend reopens a file");
    std::unique_ptr<EventChannel> channel = createChannel(1, /*monitor=*/false, /*maxThreads=*/1);
    TempPath path, moved, plainPath;
    const std::vector<char> data = pattern(16 * 1024, 0);
    File file = File::open(path.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    file.writeAt(0, data.data(), data.size());
    std::filesystem::rename(path.str(), moved.str());
    std::filesystem::remove(moved.str());
    File plain = File::open(plainPath.str(), evchan::kFileRead | evchan::kFileWrite | evchan::kFileCreate);
    plain.writeAt(0, data.data(), data.size());
    std::vector<char> buffer(data.size()), plainBuffer(data.size());
    FileReadEvent read(file, 0, buffer.data(), buffer.size());
    FileReadEvent plainRead(plain, 0, plainBuffer.data(), plainBuffer.size());
    std::atomic<int> back{0};
    read.setCallback([&](Event&) { ++back; });
    plainRead.setCallback([&](Event&) { ++back; });
    {
      HeldWorker held(*channel);
      channel->post(read);
      channel->post(plainRead);
      CPPUNIT_ASSERT(evchan::test::eventually([&] { return plainBuffer == data; }));
      CPPUNIT_ASSERT_MESSAGE("the unreopenable file was read without a worker",
                             std::all_of(buffer.begin(), buffer.end(), [](char c) { return c == 0; }));
    }
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return back.load() == 2; }));
    CPPUNIT_ASSERT_MESSAGE(describe(read.error()), !read.error());
    CPPUNIT_ASSERT_EQUAL(data.size(), read.bytesTransferred());
    CPPUNIT_ASSERT(buffer == data);
    FileWriteEvent write(file, data.size(), data.data(), 100);
    channel->post(write);
    CPPUNIT_ASSERT(channel->getEvent(patience()) == &write);
    CPPUNIT_ASSERT_MESSAGE(describe(write.error()), !write.error());
    CPPUNIT_ASSERT_EQUAL(std::size_t(100), write.bytesTransferred());
    std::error_code ec;
    std::size_t taskRead = 0;
    TaskHandle task = channel->spawn([&] {
      std::vector<char> all(data.size() + 100);
      taskRead = file.readAt(0, all.data(), all.size());
      if (!std::equal(data.begin(), data.begin() + 100, all.begin() + data.size())) taskRead = 0;
    }, evchan::TaskOptions(), ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    evchan::test::joinWithin(task);
    CPPUNIT_ASSERT_EQUAL(data.size() + 100, taskRead);
  }

 private:
  static evchan::Duration patience() {
    return std::chrono::duration_cast<evchan::Duration>(evchan::test::generous(std::chrono::seconds(8)));
  }

  std::unique_ptr<EventChannel> createChannel(int initialThreads = 0, bool monitor = true, int maxThreads = 0) {
    if (const char* why = evchan::test::fileEventsUntestable(B)) EVCHAN_SKIP(why);
    EventChannel::Options options;
    options.backend = B;
    options.initialThreads = initialThreads;
    options.maxThreads = maxThreads;
    if (!monitor) options.stuckWorkerGrace = evchan::Duration::zero();
    return evchan::test::createOnBackendOrSkip(options);
  }

  static void assertRejected(EventChannel& channel, Event& event, Errc expected) {
    std::error_code ec;
    channel.post(event, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == expected);
    CPPUNIT_ASSERT(!event.inFlight());
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(FileTest<Backend::Epoll>);
CPPUNIT_TEST_SUITE_REGISTRATION(FileTest<Backend::Aio>);
CPPUNIT_TEST_SUITE_REGISTRATION(FileTest<Backend::IoUring>);
CPPUNIT_TEST_SUITE_REGISTRATION(FileTest<Backend::AprPollset>);
CPPUNIT_TEST_SUITE_REGISTRATION(FileTest<Backend::Iocp>);
