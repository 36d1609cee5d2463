// SPDX-License-Identifier: Apache-2.0
// The stream algorithms (Stream's readExactly/writeAll and BufferedReader)
// tested once, over any implementation: a suite file instantiates
// StreamSuite with a factory of connected pairs (TcpSocket, ShmStream, ...).
#ifndef EVCHAN_TEST_SUPPORT_STREAM_SUITE_H
#define EVCHAN_TEST_SUPPORT_STREAM_SUITE_H

#include <cppunit/extensions/HelperMacros.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <evchan/buffer.h>
#include <evchan/buffered_reader.h>
#include <evchan/error.h>
#include <evchan/event_channel.h>
#include <evchan/stream.h>
#include <evchan/system_error.h>
#include <evchan/task.h>

#include "support/diagnostics.h"
#include "support/interrupted_stream.h"
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

/// A close() that lands between two reads of one call on `client`
/// (`call`: "readUntil", "peek" or "readExactly"), as another thread's
/// would, after `server` sent the first part of a message: the call ends
/// with operation_canceled, as a close() ends a single read under way, and
/// a call begun after the close with not_open.
inline void checkCloseBetweenReadsCancels(Stream& client, Stream& server, const std::string& call) {
  InterruptedAfterFirstRead stream(client, [&client] { client.close(); });
  server.writeAll("abc", 3);
  std::error_code ec;
  BufferedReader reader(stream);
  char buffer[8];
  if (call == "readUntil") {
    reader.readUntil("\n", 100, ec);
  } else if (call == "peek") {
    reader.peek(sizeof buffer, ec);
  } else {
    stream.readExactly(buffer, sizeof buffer, ec);
  }
  CPPUNIT_ASSERT_MESSAGE(call + ": " + describe(ec), ec == std::errc::operation_canceled);
  CPPUNIT_ASSERT_EQUAL(2, stream.reads());
  stream.readExactly(buffer, 1, ec);
  CPPUNIT_ASSERT_MESSAGE(call + ", then readExactly: " + describe(ec), ec == Errc::not_open);
}

/// Runs `first` and `second` at once: on two plain threads, or as two
/// tasks of a channel with ONE worker and no stuck-worker monitor, so
/// that a wait which blocked the worker instead of suspending its task
/// would starve the other task (the test then fails on its timeouts).
/// Rethrows what either threw.  Skips where tasks are unavailable.
inline void runBothOn(Where where, const std::function<void()>& first, const std::function<void()>& second) {
  if (where == Where::OnThread) {
    std::exception_ptr failures[2];
    std::thread other([&] {
      try {
        second();
      } catch (...) {
        failures[1] = std::current_exception();
      }
    });
    try {
      first();
    } catch (...) {
      failures[0] = std::current_exception();
    }
    other.join();
    for (const std::exception_ptr& failure : failures)
      if (failure) std::rethrow_exception(failure);
    return;
  }
  EventChannel::Options options;
  options.initialThreads = 1;
  options.stuckWorkerGrace = Duration::zero();
  std::unique_ptr<EventChannel> channel = createOrSkip(options);
  std::error_code ec;
  TaskHandle one = channel->spawn(first, TaskOptions(), ec);
  if (ec == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build: " + ec.message());
  CPPUNIT_ASSERT_MESSAGE("spawn: " + ec.message(), !ec);
  TaskHandle two = channel->spawn(second, TaskOptions(), ec);
  CPPUNIT_ASSERT_MESSAGE("spawn: " + ec.message(), !ec);
  CPPUNIT_ASSERT_MESSAGE("task did not end in time", eventually([&] { return one.done() && two.done(); },
                                                                 std::chrono::seconds(90)));
  std::exception_ptr failure;
  for (TaskHandle* task : {&one, &two}) {
    try {
      task->join();
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

/// A gather write's bytes (the stream pattern from `offset` on) cut into
/// pieces of random sizes up to `maxPiece`; about one piece in four is
/// empty, half of those with null data (which an empty piece may have).
struct Gather {
  std::vector<unsigned char> bytes;
  std::vector<ConstBuffer> pieces;
  std::uint64_t checksum = kChecksumSeed;
};

inline Gather makeGather(std::size_t pieces, std::size_t maxPiece, std::uint64_t seed, std::uint64_t offset = 0) {
  std::mt19937_64 random(seed);
  std::vector<std::size_t> sizes(pieces);
  std::size_t total = 0;
  for (std::size_t& size : sizes) {
    size = random() % 4 == 0 ? 0 : 1 + random() % maxPiece;
    total += size;
  }
  Gather gather;
  gather.bytes.resize(total);
  fillPattern(gather.bytes.data(), total, offset);
  gather.checksum = checksum(kChecksumSeed, gather.bytes.data(), total);
  std::size_t at = 0;
  for (std::size_t size : sizes) {
    const bool nullEmpty = size == 0 && random() % 2 == 0;
    gather.pieces.push_back(ConstBuffer{nullEmpty ? nullptr : gather.bytes.data() + at, size});
    at += size;
  }
  return gather;
}

/// Reads `size` bytes and returns their checksum (kChecksumSeed first).
inline std::uint64_t readAndChecksum(Stream& stream, std::size_t size, std::uint64_t state = kChecksumSeed) {
  std::vector<unsigned char> chunk(64 * 1024);
  while (size > 0) {
    const std::size_t got = stream.readSome(chunk.data(), std::min(size, chunk.size()));
    state = checksum(state, chunk.data(), got);
    size -= got;
  }
  return state;
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
  CPPUNIT_TEST(testGatherOfNothingAndBadPieces);
  CPPUNIT_TEST(testGatherOfManySmallAndEmptyPiecesOnThreads);
  CPPUNIT_TEST(testGatherOfManySmallAndEmptyPiecesInTasks);
  CPPUNIT_TEST(testPartialGatherResumesMidPieceOnThreads);
  CPPUNIT_TEST(testPartialGatherResumesMidPieceInTasks);
  CPPUNIT_TEST(testGatherOfMorePiecesThanIovMax);
  CPPUNIT_TEST(testCloseBetweenTheReadsOfACallCancelsItOnThreads);
  CPPUNIT_TEST(testCloseBetweenTheReadsOfACallCancelsItInTasks);
  CPPUNIT_TEST(testCloseAsACallBeginsCancelsIt);
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

  void testCloseBetweenTheReadsOfACallCancelsItOnThreads() { closeBetweenReads(Where::OnThread); }
  void testCloseBetweenTheReadsOfACallCancelsItInTasks() { closeBetweenReads(Where::InTask); }

  // A close() right after readExactly() or writeAll() took its mark,
  // before its first step, also came during the call: operation_canceled.
  void testCloseAsACallBeginsCancelsIt() {
    for (const char* call : {"readExactly", "writeAll"}) {
      StreamPair pair = Factory::make();
      ClosedWhenMarked stream(*pair.client);
      char buffer[4] = {};
      std::error_code ec;
      if (std::string(call) == "readExactly") {
        stream.readExactly(buffer, sizeof buffer, ec);
      } else {
        stream.writeAll(buffer, sizeof buffer, ec);
      }
      CPPUNIT_ASSERT_MESSAGE(std::string(call) + ": " + describe(ec), ec == std::errc::operation_canceled);
      CPPUNIT_ASSERT(!pair.client->isOpen());
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

  // Nothing to write is no error; a bad piece anywhere fails the call
  // before a byte goes out; a closed stream is not_open.
  void testGatherOfNothingAndBadPieces() {
    StreamPair pair = Factory::make();
    Stream& client = *pair.client;
    std::error_code ec;
    const ConstBuffer empties[] = {{nullptr, 0}, {"x", 0}, {nullptr, 0}};
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeSome(empties, 0, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeSome(nullptr, std::size_t{0}, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeSome(empties, 3, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeAll(empties, 3, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeAll({}, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);

    const ConstBuffer* noArray = nullptr;
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeSome(noArray, 2, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::null_buffer);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeAll(noArray, 2, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::null_buffer);
    const ConstBuffer badLast[] = {{"good", 4}, {nullptr, 0}, {nullptr, 3}};
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeSome(badLast, 3, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::null_buffer);
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeAll(badLast, 3, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::null_buffer);
    CPPUNIT_ASSERT_THROW(client.writeAll(badLast, 3), SystemError);
    CPPUNIT_ASSERT_THROW(client.writeSome(badLast, 3), SystemError);
    // The single-buffer null forms keep their meaning beside the gather forms.
    CPPUNIT_ASSERT_EQUAL(std::size_t{0}, client.writeSome(nullptr, 3, ec));
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::null_buffer);

    // Nothing of the refused calls went out: the next bytes come first.
    CPPUNIT_ASSERT_EQUAL(std::size_t{9}, client.writeAll({{"he", 2}, {nullptr, 0}, {"llo", 3}, {" you", 4}}));
    char got[9];
    CPPUNIT_ASSERT_EQUAL(std::size_t{9}, pair.server->readExactly(got, sizeof got));
    CPPUNIT_ASSERT_EQUAL(std::string("hello you"), std::string(got, sizeof got));

    client.close();
    client.writeAll(empties, 0, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::not_open);
    client.writeSome(empties, 0, ec);
    CPPUNIT_ASSERT_MESSAGE(describe(ec), ec == Errc::not_open);
    try {
      client.writeAll({{"x", 1}});
      CPPUNIT_FAIL("a gather writeAll on a closed stream did not throw");
    } catch (const SystemError& e) {
      CPPUNIT_ASSERT(e.code() == Errc::not_open);
    }
  }

  // 3,000 pieces a call (more than IOV_MAX), a quarter of them empty, the
  // rest 1..100 bytes: the checksums on both sides agree.
  void testGatherOfManySmallAndEmptyPiecesOnThreads() { manySmallPieces(Where::OnThread); }
  void testGatherOfManySmallAndEmptyPiecesInTasks() { manySmallPieces(Where::InTask); }

  // Pieces far larger than what the stream holds: a gather writeSome with
  // the peer not reading takes part of the first piece only; writeAll of
  // the rest then waits for the peer (suspending its task, in a task) and
  // resumes inside a piece after each partial write.
  void testPartialGatherResumesMidPieceOnThreads() { partialGather(Where::OnThread); }
  void testPartialGatherResumesMidPieceInTasks() { partialGather(Where::InTask); }

  // One gather writeSome of 4,000 pieces (1,500 empty ones in front) takes
  // at least a byte and at most what one call may (the rest is left), and
  // writeAll carries on from there.
  void testGatherOfMorePiecesThanIovMax() {
    StreamPair pair = Factory::make();
    Gather gather = makeGather(2500, 9, 11);
    gather.pieces.insert(gather.pieces.begin(), 1500, ConstBuffer{});
    const std::size_t total = gather.bytes.size();
    std::size_t first = 0;
    std::uint64_t received = kChecksumSeed;
    runBothOn(
        Where::OnThread,
        [&] {
          first = pair.client->writeSome(gather.pieces.data(), gather.pieces.size());
          CPPUNIT_ASSERT(first > 0 && first <= total);
          std::vector<ConstBuffer> rest = gather.pieces;
          ConstBuffer* left = rest.data();
          std::size_t count = rest.size();
          consumeBuffers(left, count, first);
          CPPUNIT_ASSERT_EQUAL(total - first, pair.client->writeAll(left, count));
        },
        [&] { received = readAndChecksum(*pair.server, total); });
    CPPUNIT_ASSERT_EQUAL(gather.checksum, received);
  }

 private:
  void manySmallPieces(Where where) {
    StreamPair pair = Factory::make();
    const int rounds = slowdown() > 1 ? 8 : 40;
    std::vector<Gather> gathers;
    std::uint64_t offset = 0;
    for (int round = 0; round < 4; ++round) {
      gathers.push_back(makeGather(3000, 100, 100 + round, offset));
      offset += gathers.back().bytes.size();
    }
    std::size_t total = 0;
    std::uint64_t sent = kChecksumSeed;
    for (int round = 0; round < rounds; ++round) {
      const Gather& gather = gathers[round % gathers.size()];
      total += gather.bytes.size();
      sent = checksum(sent, gather.bytes.data(), gather.bytes.size());
    }
    std::uint64_t received = kChecksumSeed;
    runBothOn(
        where,
        [&] {
          for (int round = 0; round < rounds; ++round) {
            const Gather& gather = gathers[round % gathers.size()];
            CPPUNIT_ASSERT_EQUAL(gather.bytes.size(), pair.client->writeAll(gather.pieces.data(), gather.pieces.size()));
          }
        },
        [&] { received = readAndChecksum(*pair.server, total); });
    CPPUNIT_ASSERT_EQUAL(sent, received);
  }

  void partialGather(Where where) {
    StreamPair pair = Factory::makeSmallBuffered();
    // Odd sizes, empty pieces between, all far beyond the stream's buffering.
    const std::size_t sizes[] = {(std::size_t{1} << 20) + 3, 0, 7, 0, (std::size_t{2} << 20) + 11, (std::size_t{1} << 20) + 1};
    std::size_t total = 0;
    for (std::size_t size : sizes) total += size;
    std::vector<unsigned char> bytes(total);
    fillPattern(bytes.data(), total, 5);
    std::vector<ConstBuffer> pieces;
    std::size_t at = 0;
    for (std::size_t size : sizes) {
      pieces.push_back(ConstBuffer{bytes.data() + at, size});
      at += size;
    }
    // The peer is not reading: one writeSome fills what the stream holds,
    // which ends inside the first piece.
    const std::size_t first = pair.client->writeSome(pieces.data(), pieces.size());
    CPPUNIT_ASSERT_MESSAGE("took " + std::to_string(first), first > 0 && first < sizes[0]);
    ConstBuffer* left = pieces.data();
    std::size_t count = pieces.size();
    consumeBuffers(left, count, first);
    CPPUNIT_ASSERT_EQUAL(pieces.size(), count);
    CPPUNIT_ASSERT(left->data == bytes.data() + first && left->size == sizes[0] - first);
    // Then the peer reads, while writeAll goes on from the middle of the piece.
    std::uint64_t received = kChecksumSeed;
    std::size_t wrote = 0;
    runBothOn(
        where, [&] { wrote = pair.client->writeAll(left, count); },
        [&] { received = readAndChecksum(*pair.server, total); });
    CPPUNIT_ASSERT_EQUAL(total - first, wrote);
    CPPUNIT_ASSERT_EQUAL(checksum(kChecksumSeed, bytes.data(), total), received);
  }

  // ShmStream said not_open before (see checkCloseBetweenReadsCancels()).
  void closeBetweenReads(Where where) {
    for (const char* call : {"readUntil", "peek", "readExactly"}) {
      StreamPair pair = Factory::make();
      runOn(where, [&pair, call] { checkCloseBetweenReadsCancels(*pair.client, *pair.server, call); });
    }
  }

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
