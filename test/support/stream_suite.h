// SPDX-License-Identifier: Apache-2.0
// The stream algorithms (Stream's readExactly/writeAll and BufferedReader)
// tested once, over any implementation: a suite file instantiates
// StreamSuite with a factory of connected pairs (TcpSocket, ShmStream, ...).
#ifndef EVCHAN_TEST_SUPPORT_STREAM_SUITE_H
#define EVCHAN_TEST_SUPPORT_STREAM_SUITE_H

#include <cppunit/extensions/HelperMacros.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <evchan/buffered_reader.h>
#include <evchan/error.h>
#include <evchan/event_channel.h>
#include <evchan/stream.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/named_suite.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace evchan::test {

/// Two connected ends of one stream.
struct StreamPair {
  std::unique_ptr<Stream> client;
  std::unique_ptr<Stream> server;
};

/// Where a scenario runs: on a plain thread, or inside a task (where every
/// wait must suspend the task).
enum class Where { OnThread, InTask };

/// Runs `scenario` on a plain thread or in a task of a one-worker channel,
/// and rethrows what it threw.  Skips where tasks are unavailable.
inline void runOn(Where where, const std::function<void()>& scenario) {
  if (where == Where::OnThread) {
    std::exception_ptr failure;
    std::thread thread([&] {
      try {
        scenario();
      } catch (...) {
        failure = std::current_exception();
      }
    });
    thread.join();
    if (failure) std::rethrow_exception(failure);
    return;
  }
  EventChannel::Options options;
  options.initialThreads = 1;
  std::unique_ptr<EventChannel> channel = createOrSkip(options);
  std::error_code ec;
  TaskHandle task = channel->spawn(scenario, TaskOptions(), ec);
  if (ec == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build: " + ec.message());
  CPPUNIT_ASSERT_MESSAGE("spawn: " + ec.message(), !ec);
  joinWithin(task, std::chrono::seconds(60));
}

/// Record i of a seeded sequence: random payload bytes that never contain
/// its delimiter, then the delimiter, chosen from a few (one byte, CRLF,
/// two NULs, a long one) so that delimiters straddle every buffer edge.
struct Record {
  std::string delimiter;
  std::string payload;
};

inline Record makeRecord(std::mt19937_64& random) {
  static const char* const kDelimiters[] = {"\n", "\r\n", "|", "END-OF-RECORD"};
  Record record;
  const std::size_t which = random() % 5;
  record.delimiter = which == 4 ? std::string("\0\0", 2) : std::string(kDelimiters[which]);
  const std::size_t size = random() % 3000;
  record.payload.reserve(size);
  while (record.payload.size() < size) {
    const char c = static_cast<char>('a' + random() % 26);  // never a delimiter byte
    record.payload.push_back(c);
  }
  if (random() % 7 == 0) record.payload.clear();
  return record;
}

template <class Factory>
class StreamSuite : public LeakCheckedFixture {
  EVCHAN_TEST_SUITE_NAMED(StreamSuite, std::string("StreamSuite<") + Factory::name() + ">");
  CPPUNIT_TEST(testShortReadsAndWrites);
  CPPUNIT_TEST(testClosedStreamAndNullBuffer);
  CPPUNIT_TEST(testLineSplitAtEveryByteBoundary);
  CPPUNIT_TEST(testLongerThanMaxBytesIsRefusedAndTheReaderGoesOn);
  CPPUNIT_TEST(testEndOfStreamMidLineKeepsWhatArrived);
  CPPUNIT_TEST(testPeekConsumeAndExactReadsFromTheBuffer);
  CPPUNIT_TEST(testRecordsBothWaysOnThreads);
  CPPUNIT_TEST(testRecordsBothWaysInTasks);
  CPPUNIT_TEST_SUITE_END();

 public:
  // readSome returns what is there (at least a byte); writeSome what the
  // stream took; readExactly and writeAll loop over them.
  void testShortReadsAndWrites() {
    StreamPair pair = Factory::make();
    CPPUNIT_ASSERT_EQUAL(std::size_t{5}, pair.client->writeSome("hello", 5));
    char buffer[64];
    std::size_t got = 0;
    while (got < 5) got += pair.server->readSome(buffer + got, sizeof buffer - got);
    CPPUNIT_ASSERT_EQUAL(std::string("hello"), std::string(buffer, 5));
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client->writeSome(buffer, 0));
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.server->readSome(buffer, 0));

    std::vector<unsigned char> out(std::size_t{4} << 20), in(out.size());
    fillPattern(out.data(), out.size(), 7);
    std::thread writer([&] {
      for (std::size_t done = 0; done < out.size(); done += 1000)
        pair.client->writeAll(out.data() + done, std::min<std::size_t>(1000, out.size() - done));
    });
    CPPUNIT_ASSERT_EQUAL(in.size(), pair.server->readExactly(in.data(), in.size()));
    writer.join();
    CPPUNIT_ASSERT(in == out);
  }

  void testClosedStreamAndNullBuffer() {
    StreamPair pair = Factory::make();
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client->writeAll(nullptr, 3, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::null_buffer);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, pair.client->readExactly(nullptr, 3, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::null_buffer);
    pair.client->close();
    CPPUNIT_ASSERT(!pair.client->isOpen());
    char byte = 0;
    pair.client->readExactly(&byte, 1, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::not_open);
    pair.client->writeAll(&byte, 0, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::not_open);
    BufferedReader reader(*pair.client);
    reader.readLine(80, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::not_open);
    try {
      pair.client->writeAll("x", 1);
      CPPUNIT_FAIL("writeAll on a closed stream did not throw");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT(e.code() == Errc::not_open);
    }
  }

  // Three lines, the first part of which arrives before the reader looks:
  // for every split point the reader has exactly that much buffered.
  void testLineSplitAtEveryByteBoundary() {
    const std::string text = "GET /index.html HTTP/1.1\r\nHost: example.org\r\n\r\n";
    StreamPair pair = Factory::make();
    for (std::size_t split = 1; split < text.size(); ++split) {
      BufferedReader reader(*pair.server, 8);
      pair.client->writeAll(text.data(), split);
      CPPUNIT_ASSERT(reader.peek(split).size() == split);
      pair.client->writeAll(text.data() + split, text.size() - split);
      const std::string at = " (split at " + std::to_string(split) + ")";
      CPPUNIT_ASSERT_EQUAL_MESSAGE(at, std::string("GET /index.html HTTP/1.1"), reader.readLine(100));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(at, std::string("Host: example.org"), reader.readLine(100));
      CPPUNIT_ASSERT_EQUAL_MESSAGE(at, std::string(), reader.readLine(100));
      CPPUNIT_ASSERT_MESSAGE("left over" + at, reader.buffered().empty());
    }
  }

  void testLongerThanMaxBytesIsRefusedAndTheReaderGoesOn() {
    StreamPair pair = Factory::make();
    BufferedReader reader(*pair.server, 16);
    const std::string flood(100, 'x');
    pair.client->writeAll(flood.data(), flood.size());
    std::error_code ec;
    const std::string line = reader.readLine(50, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::message_too_long);
    CPPUNIT_ASSERT(ec == std::errc::message_size);
    CPPUNIT_ASSERT(line.empty());
    // Nothing was lost: the 50 bytes looked at are still buffered, and the
    // whole flood reads back.
    CPPUNIT_ASSERT(reader.buffered().size() >= 50);
    std::string again(flood.size(), '\0');
    CPPUNIT_ASSERT_EQUAL(flood.size(), reader.readExactly(again.data(), again.size()));
    CPPUNIT_ASSERT_EQUAL(flood, again);
    // A delimiter just past the limit is past it; exactly at it, it fits.
    pair.client->writeAll("0123456789\n", 11);
    CPPUNIT_ASSERT_EQUAL(std::string(), reader.readUntil("\n", 10, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::message_too_long);
    CPPUNIT_ASSERT_EQUAL(std::string("0123456789\n"), reader.readUntil("\n", 11));
    // Longer than the buffer but within maxBytes: the buffer grows to it.
    const std::string longLine = std::string(70, 'y') + "\r\n";
    pair.client->writeAll(longLine.data(), longLine.size());
    CPPUNIT_ASSERT_EQUAL(std::string(70, 'y'), reader.readLine(72));
    CPPUNIT_ASSERT_THROW(reader.consume(1), SystemError);  // more than is buffered
    CPPUNIT_ASSERT_THROW(reader.readUntil("", 10), SystemError);
  }

  void testEndOfStreamMidLineKeepsWhatArrived() {
    StreamPair pair = Factory::make();
    BufferedReader reader(*pair.server);
    pair.client->writeAll("whole\npartial", 13);
    pair.client->close();
    CPPUNIT_ASSERT_EQUAL(std::string("whole"), reader.readLine(100));
    std::error_code ec;
    CPPUNIT_ASSERT_EQUAL(std::string(), reader.readLine(100, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::end_of_stream);
    CPPUNIT_ASSERT_EQUAL(std::string("partial"), std::string(reader.buffered()));
    char rest[7];
    CPPUNIT_ASSERT_EQUAL(std::size_t{7}, reader.readExactly(rest, 7));
    CPPUNIT_ASSERT_EQUAL(std::string("partial"), std::string(rest, 7));
    reader.readSome(rest, 1, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::end_of_stream);
  }

  void testPeekConsumeAndExactReadsFromTheBuffer() {
    StreamPair pair = Factory::make();
    BufferedReader reader(*pair.server, 4);
    const std::string frames("\x00\x05" "hello" "\x00\x03" "abc", 12);
    pair.client->writeAll(frames.data(), frames.size());
    // A length-prefixed frame: peek the header, consume it, read the body.
    for (const std::string expected : {"hello", "abc"}) {
      const std::string_view header = reader.peek(2);
      const std::size_t length = static_cast<unsigned char>(header[0]) * 256u + static_cast<unsigned char>(header[1]);
      reader.consume(2);
      std::string body(length, '\0');
      CPPUNIT_ASSERT_EQUAL(length, reader.readExactly(body.data(), length));
      CPPUNIT_ASSERT_EQUAL(expected, body);
    }
    CPPUNIT_ASSERT(reader.buffered().empty());
  }

  void testRecordsBothWaysOnThreads() { recordsBothWays(Where::OnThread); }
  void testRecordsBothWaysInTasks() { recordsBothWays(Where::InTask); }

 private:
  // Each side writes a seeded sequence of records while reading the other
  // side's with readUntil, checking every payload and delimiter; the
  // volume (64 MiB each way; less under sanitizers) crosses every edge of
  // the reader's buffer many times.
  void recordsBothWays(Where where) {
    const std::size_t volume = slowdown() > 1 ? (std::size_t{4} << 20) : (std::size_t{64} << 20);
    StreamPair pair = Factory::make();
    auto side = [volume](Stream& stream, std::uint64_t writeSeed, std::uint64_t readSeed) {
      std::exception_ptr writeFailure;
      std::thread writer([&] {
        try {
          std::mt19937_64 random(writeSeed);
          std::string batch;
          for (std::size_t sent = 0; sent < volume;) {
            const Record record = makeRecord(random);
            batch += record.payload;
            batch += record.delimiter;
            if (batch.size() >= 8192 || sent + batch.size() >= volume) {
              stream.writeAll(batch.data(), batch.size());
              sent += batch.size();
              batch.clear();
            }
          }
        } catch (...) {
          writeFailure = std::current_exception();
        }
      });
      std::mt19937_64 random(readSeed);
      BufferedReader reader(stream, 1000);
      std::size_t received = 0, records = 0;
      std::string failure;
      while (received < volume && failure.empty()) {
        const Record expected = makeRecord(random);
        std::error_code ec;
        const std::string got = reader.readUntil(expected.delimiter, 4000, ec);
        if (ec) {
          failure = "record " + std::to_string(records) + ": " + describe(ec);
        } else if (got != expected.payload + expected.delimiter) {
          failure = "record " + std::to_string(records) + " differs";
        }
        received += got.size();
        ++records;
      }
      writer.join();
      if (writeFailure) std::rethrow_exception(writeFailure);
      CPPUNIT_ASSERT_MESSAGE(failure, failure.empty());
    };
    std::exception_ptr serverFailure, clientFailure;
    std::thread server([&] {
      try {
        runOn(where, [&] { side(*pair.server, 2, 1); });
      } catch (...) {
        serverFailure = std::current_exception();
      }
    });
    try {
      runOn(where, [&] { side(*pair.client, 1, 2); });
    } catch (...) {
      clientFailure = std::current_exception();
      pair.client->close();  // a side that failed or was skipped must not leave the other waiting
    }
    server.join();
    if (clientFailure) std::rethrow_exception(clientFailure);
    if (serverFailure) std::rethrow_exception(serverFailure);
  }
};

}  // namespace evchan::test

#endif  // EVCHAN_TEST_SUPPORT_STREAM_SUITE_H
