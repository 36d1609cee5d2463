// SPDX-License-Identifier: Apache-2.0
// BufferedReader's calls that read the stream more than once (readUntil(),
// readLine(), peek()) are each one call: a cancel() or close() that lands
// between two of their reads ends them, as it ends a readExactly(), on a
// plain thread and inside a task.  The bytes read before stay buffered.
#include <cppunit/extensions/HelperMacros.h>

#include <chrono>
#include <string>
#include <system_error>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/interrupted_stream.h"
#include "support/leak_checked_fixture.h"
#include "support/loopback.h"
#include "support/slowdown.h"
#include "support/stream_suite.h"

using namespace std::chrono_literals;

namespace {

using evchan::BufferedReader;
using evchan::Stream;
using evchan::TcpSocket;
using evchan::test::ConnectedPair;
using evchan::test::connectPair;
using evchan::test::describe;
using evchan::test::InterruptedAfterFirstRead;
using evchan::test::Where;

// A lost cancel() or close() shows as this timeout, not as a hang.
constexpr evchan::Duration kSocketTimeout = 2s;

class BufferedReaderCancelTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(BufferedReaderCancelTest);
  CPPUNIT_TEST(cancelBetweenTheReadsOfReadUntilEndsItOnAThread);
  CPPUNIT_TEST(cancelBetweenTheReadsOfReadUntilEndsItInATask);
  CPPUNIT_TEST(cancelBetweenTheReadsOfReadLineEndsIt);
  CPPUNIT_TEST(cancelBetweenTheReadsOfPeekEndsItOnAThread);
  CPPUNIT_TEST(cancelBetweenTheReadsOfPeekEndsItInATask);
  CPPUNIT_TEST(closeBetweenTheReadsOfReadUntilIsOperationCanceledOnAThread);
  CPPUNIT_TEST(closeBetweenTheReadsOfReadUntilIsOperationCanceledInATask);
  CPPUNIT_TEST(cancelBeforeTheCallDoesNotEndIt);
  CPPUNIT_TEST_SUITE_END();

 public:
  void cancelBetweenTheReadsOfReadUntilEndsItOnAThread() { readUntilInterrupted(Where::OnThread); }
  void cancelBetweenTheReadsOfReadUntilEndsItInATask() { readUntilInterrupted(Where::InTask); }

  void cancelBetweenTheReadsOfReadLineEndsIt() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    InterruptedAfterFirstRead stream(pair.client, [&pair] { pair.client.cancel(); });
    BufferedReader reader(stream);
    pair.server.writeAll("half a li", 9);
    std::error_code ec;
    const std::string line = reader.readLine(100, ec);
    ASSERT_ERROR(std::errc::operation_canceled, ec);
    CPPUNIT_ASSERT(line.empty());
    CPPUNIT_ASSERT_EQUAL(2, stream.reads());
    pair.server.writeAll("ne\r\n", 4);
    CPPUNIT_ASSERT_EQUAL(std::string("half a line"), reader.readLine(100));
  }

  void cancelBetweenTheReadsOfPeekEndsItOnAThread() { peekInterrupted(Where::OnThread); }
  void cancelBetweenTheReadsOfPeekEndsItInATask() { peekInterrupted(Where::InTask); }

  void closeBetweenTheReadsOfReadUntilIsOperationCanceledOnAThread() { readUntilClosed(Where::OnThread); }
  void closeBetweenTheReadsOfReadUntilIsOperationCanceledInATask() { readUntilClosed(Where::InTask); }

  // The mark is taken when the call begins: a cancel() made before it
  // ends nothing, and a call made after it waits as usual.
  void cancelBeforeTheCallDoesNotEndIt() {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    BufferedReader reader(pair.client);
    pair.client.cancel();
    pair.server.writeAll("ab", 2);
    std::thread late([&] {
      std::this_thread::sleep_for(50ms);  // most often the reader waits for the rest by now
      pair.server.writeAll("c\n", 2);
    });
    std::error_code ec;
    const std::string got = reader.readUntil("\n", 100, ec);
    late.join();
    CPPUNIT_ASSERT_MESSAGE(describe(ec), !ec);
    CPPUNIT_ASSERT_EQUAL(std::string("abc\n"), got);
  }

 private:
  // The peer sends part of a message: the reader's first read takes it,
  // then the cancel() lands, and the read for the rest must end with
  // operation_canceled at once instead of waiting for the socket's
  // timeout.  What arrived stays buffered; the next call finds it.
  static void readUntilInterrupted(Where where) {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    evchan::test::runOn(where, [&pair] {
      InterruptedAfterFirstRead stream(pair.client, [&pair] { pair.client.cancel(); });
      BufferedReader reader(stream, 4);
      pair.server.writeAll("abc", 3);
      std::error_code ec;
      const std::string got = reader.readUntil("\r\n", 100, ec);
      ASSERT_ERROR(std::errc::operation_canceled, ec);
      CPPUNIT_ASSERT(got.empty());
      CPPUNIT_ASSERT_EQUAL(std::string("abc"), std::string(reader.buffered()));
      CPPUNIT_ASSERT_EQUAL(2, stream.reads());
      pair.server.writeAll("d\r\n", 3);
      CPPUNIT_ASSERT_EQUAL(std::string("abcd\r\n"), reader.readUntil("\r\n", 100));
    });
  }

  static void peekInterrupted(Where where) {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    evchan::test::runOn(where, [&pair] {
      InterruptedAfterFirstRead stream(pair.client, [&pair] { pair.client.cancel(); });
      BufferedReader reader(stream);
      pair.server.writeAll("12", 2);
      std::error_code ec;
      reader.peek(4, ec);
      ASSERT_ERROR(std::errc::operation_canceled, ec);
      CPPUNIT_ASSERT_EQUAL(std::string("12"), std::string(reader.buffered()));
      pair.server.writeAll("34", 2);
      CPPUNIT_ASSERT_EQUAL(std::string("1234"), std::string(reader.peek(4)));
    });
  }

  // A close() between the reads: the call was under way, so it was
  // cancelled (operation_canceled), as a close() ends a readExactly();
  // not_open is for calls made after the close.
  static void readUntilClosed(Where where) {
    ConnectedPair pair = connectPair();
    pair.client.setTimeout(kSocketTimeout);
    evchan::test::runOn(where, [&pair] {
      InterruptedAfterFirstRead stream(pair.client, [&pair] { pair.client.close(); });
      BufferedReader reader(stream);
      pair.server.writeAll("abc", 3);
      std::error_code ec;
      reader.readUntil("\n", 100, ec);
      ASSERT_ERROR(std::errc::operation_canceled, ec);
      CPPUNIT_ASSERT_EQUAL(std::string("abc"), std::string(reader.buffered()));
      reader.readUntil("\n", 100, ec);
      ASSERT_ERROR(evchan::Errc::not_open, ec);
    });
  }
};

}  // namespace

CPPUNIT_TEST_SUITE_REGISTRATION(BufferedReaderCancelTest);
