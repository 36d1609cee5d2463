// SPDX-License-Identifier: Apache-2.0
// UdpSocket sends that find the send buffer full, and so wait: tasks of
// one channel taking turns at the one waiting send, threads and tasks at
// once, a close() while they wait, and the worker free meanwhile.
//
// Loopback never fills a UDP socket's send buffer (each datagram is
// handed to the receiver within the send), so the suite runs in a network
// namespace of its own whose loopback device is slowed by a token-bucket
// queue (tc's tbf, 1 Mbit/s): a datagram stays charged to its sender's
// buffer until the queue lets it out.  Linux only; each case reports SKIP
// where the namespace or the queue cannot be made (no CAP_SYS_ADMIN, no
// `ip` or `tc`, a kernel without tbf) or the buffer does not fill.
#include <cppunit/extensions/HelperMacros.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

#include "support/diagnostics.h"
#include "support/leak_checked_fixture.h"
#include "support/skip.h"
#include "support/slowdown.h"
#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using evchan::Address;
using evchan::AddressFamily;
using evchan::Errc;
using evchan::EventChannel;
using evchan::TaskHandle;
using evchan::UdpSocket;

constexpr std::size_t kDatagramSize = 1000;
// What the senders ask of SO_SNDBUF (Linux doubles it and keeps at least
// 4,608): room for a few datagrams, where the rate lets one out every 8 ms.
constexpr int kSendBufferBytes = 4096;

// Runs a shell command, its output discarded; true when it exited with 0.
bool run(const std::string& command) {
  const int status = std::system((command + " >/dev/null 2>&1").c_str());
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Sends datagrams without blocking from a socket like the suite's until
// one is refused for want of room: true when that happens.
bool sendBufferFills() {
  const int receiver = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int sender = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  bool filled = false;
  if (receiver >= 0 && sender >= 0 &&
      ::bind(receiver, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(receiver, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
      ::setsockopt(sender, SOL_SOCKET, SO_SNDBUF, &kSendBufferBytes, sizeof kSendBufferBytes) == 0) {
    const std::vector<char> datagram(kDatagramSize);
    for (int i = 0; i < 64 && !filled; ++i) {
      filled = ::sendto(sender, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&address),
                        sizeof address) < 0 &&
               errno == EAGAIN;
    }
  }
  if (receiver >= 0) ::close(receiver);
  if (sender >= 0) ::close(sender);
  return filled;
}

// Moves the process's main thread (the cases run on it, and every thread
// and socket they make follows) into a network namespace of its own with
// the slowed loopback, once.  Empty when done, otherwise why not.
std::string enterSlowLoopback() {
  static const std::string why = []() -> std::string {
    if (::unshare(CLONE_NEWNET) != 0) {
      return std::string("cannot make a network namespace (needs CAP_SYS_ADMIN): ") + std::strerror(errno);
    }
    if (!run("ip link set lo up")) return "'ip link set lo up' failed in the new network namespace (is iproute2 installed?)";
    if (!run("tc qdisc add dev lo root tbf rate 1mbit burst 4kb limit 4mb")) {
      return "'tc qdisc add dev lo root tbf ...' failed (iproute2's tc, and a kernel with the tbf queue, are needed)";
    }
    if (!sendBufferFills()) return "the slowed loopback never filled a UDP send buffer";
    return {};
  }();
  return why;
}

// The descriptor behind the UdpSocket bound to 127.0.0.1:`port` (the API
// does not expose it), found among the process's descriptors; -1 if none.
int findUdpDescriptor(std::uint16_t port) {
  DIR* fds = ::opendir("/proc/self/fd");
  if (fds == nullptr) return -1;
  int found = -1;
  while (dirent* entry = ::readdir(fds)) {
    const int fd = std::atoi(entry->d_name);
    if (entry->d_name[0] == '.' || fd == ::dirfd(fds)) continue;
    int type = 0;
    socklen_t typeLength = sizeof type;
    sockaddr_in local{};
    socklen_t localLength = sizeof local;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &typeLength) == 0 && type == SOCK_DGRAM &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &localLength) == 0 && local.sin_family == AF_INET &&
        ntohs(local.sin_port) == port) {
      found = fd;
      break;
    }
  }
  ::closedir(fds);
  return found;
}

// A socket bound to loopback; with `smallSendBuffer`, its send buffer
// holds a few datagrams only.
UdpSocket boundSocket(bool smallSendBuffer) {
  UdpSocket socket = UdpSocket::open(AddressFamily::IPv4);
  socket.bind(Address::fromNumeric("127.0.0.1", 0, AddressFamily::IPv4));
  if (smallSendBuffer) {
    const int fd = findUdpDescriptor(static_cast<std::uint16_t>(socket.localAddress().port()));
    CPPUNIT_ASSERT_MESSAGE("the socket's descriptor was not found", fd >= 0);
    CPPUNIT_ASSERT(::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &kSendBufferBytes, sizeof kSendBufferBytes) == 0);
  }
  return socket;
}

// Datagram `sequence`: its number, then bytes that follow from it.
void fillDatagram(std::uint32_t sequence, unsigned char* out) {
  std::memcpy(out, &sequence, sizeof sequence);
  for (std::size_t i = sizeof sequence; i < kDatagramSize; ++i) out[i] = static_cast<unsigned char>(sequence * 7 + i);
}

// What a receiver saw: each sequence number's count, and what was wrong.
struct Received {
  std::vector<int> seen;
  std::uint32_t damaged = 0;
  std::string error;
};

// Receives `count` datagrams (or until an error) and checks each.
void receiveAll(UdpSocket& receiver, std::uint32_t count, Received& result) {
  result.seen.assign(count, 0);
  std::vector<unsigned char> buffer(kDatagramSize + 64);
  for (std::uint32_t received = 0; received < count; ++received) {
    std::error_code ec;
    const std::size_t n = receiver.receive(buffer.data(), buffer.size(), ec);
    if (ec) {
      result.error = "receive after " + std::to_string(received) + ": " + ec.message();
      return;
    }
    std::uint32_t sequence = 0;
    if (n == kDatagramSize) std::memcpy(&sequence, buffer.data(), sizeof sequence);
    std::vector<unsigned char> expected(kDatagramSize);
    fillDatagram(sequence, expected.data());
    if (n != kDatagramSize || sequence >= count || std::memcmp(buffer.data(), expected.data(), n) != 0) {
      ++result.damaged;
      continue;
    }
    ++result.seen[sequence];
  }
}

void checkAllArrivedOnce(const Received& result) {
  CPPUNIT_ASSERT_MESSAGE(result.error, result.error.empty());
  CPPUNIT_ASSERT_EQUAL(0u, result.damaged);
  for (std::uint32_t i = 0; i < result.seen.size(); ++i) {
    CPPUNIT_ASSERT_EQUAL_MESSAGE("datagram " + std::to_string(i), 1, result.seen[i]);
  }
}

// A sender whose send buffer holds a few datagrams, a receiver, and a
// thread that takes `count` numbered datagrams on the receiver.
struct NumberedTransfer {
  explicit NumberedTransfer(std::uint32_t count) : sender(boundSocket(true)), receiver(boundSocket(false)) {
    sender.setTimeout(evchan::test::generous(20s));
    receiver.setTimeout(evchan::test::generous(20s));
    to = receiver.localAddress();
    receiving = std::thread([this, count] { receiveAll(receiver, count, result); });
  }
  ~NumberedTransfer() {
    if (!receiving.joinable()) return;
    receiver.close();  // a case that ended early: the receive ends
    receiving.join();
  }

  // Sends datagrams who * each to who * each + each - 1, counting itself
  // in `insideSend` (when given) during each sendTo().  Empty, or what
  // went wrong.
  std::string sendNumbered(std::uint32_t who, std::uint32_t each, std::atomic<int>* insideSend = nullptr) {
    std::vector<unsigned char> datagram(kDatagramSize);
    for (std::uint32_t i = 0; i < each; ++i) {
      fillDatagram(who * each + i, datagram.data());
      std::error_code ec;
      if (insideSend != nullptr) ++*insideSend;
      const std::size_t sent = sender.sendTo(datagram.data(), datagram.size(), to, ec);
      if (insideSend != nullptr) --*insideSend;
      if (ec || sent != datagram.size()) {
        return "sender " + std::to_string(who) + ", datagram " + std::to_string(i) + ": sent " +
               std::to_string(sent) + ", " + ec.message();
      }
    }
    return {};
  }

  // Waits for the receiver to take them all, and checks each.
  void checkReceived() {
    receiving.join();
    checkAllArrivedOnce(result);
  }

  UdpSocket sender;
  UdpSocket receiver;
  Address to;
  Received result;
  std::thread receiving;
};

class UdpFullSendBufferTest : public evchan::test::LeakCheckedFixture {
  CPPUNIT_TEST_SUITE(UdpFullSendBufferTest);
  CPPUNIT_TEST(testTasksOfOneChannelTakeTurnsWhileTheWorkerRunsOthers);
  CPPUNIT_TEST(testThreadsAndTasksSendIntoAFullBufferAtOnce);
  CPPUNIT_TEST(testCloseEndsTheSendsWaitingForRoom);
  CPPUNIT_TEST_SUITE_END();

 public:
  void setUp() override {
    LeakCheckedFixture::setUp();
    const std::string why = enterSlowLoopback();
    if (!why.empty()) EVCHAN_SKIP(why);
  }

  // Four tasks of a one-worker channel send 30 datagrams each on one
  // socket whose buffer holds about four: 120 KB through a 1 Mbit/s queue
  // (about a second), so nearly every send waits for room, the others in
  // line behind it.  Every send returns its whole size (none fails with
  // socket_busy), every datagram arrives once and whole, and a fifth task
  // ticks on the same worker while sends are under way: with one worker,
  // a tick while another task is inside sendTo() means that task's send
  // was suspended, not holding the thread.
  void testTasksOfOneChannelTakeTurnsWhileTheWorkerRunsOthers() {
    constexpr std::uint32_t kSenders = 4, kEach = 30;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannelWithoutMonitor(1);
    NumberedTransfer transfer(kSenders * kEach);
    std::atomic<bool> sending{true};
    std::atomic<int> insideSend{0};  // senders inside sendTo()
    std::atomic<int> ticks{0}, ticksDuringASend{0};
    std::error_code spawned;
    TaskHandle ticker = channel->spawn(
        [&] {
          while (sending.load()) {
            ++ticks;
            if (insideSend.load() > 0) ++ticksDuringASend;
            evchan::this_task::sleepFor(1ms);
          }
        },
        {}, spawned);
    if (spawned == std::errc::function_not_supported) EVCHAN_SKIP("no tasks in this build");
    ASSERT_NO_ERROR(spawned);
    std::vector<std::string> errors(kSenders);
    std::vector<TaskHandle> senders;
    for (std::uint32_t who = 0; who < kSenders; ++who) {
      senders.push_back(channel->spawn([&, who] { errors[who] = transfer.sendNumbered(who, kEach, &insideSend); }));
    }
    for (TaskHandle& task : senders) evchan::test::joinWithin(task, evchan::test::generous(30s));
    sending = false;
    evchan::test::joinWithin(ticker, evchan::test::generous(10s));
    for (const std::string& error : errors) CPPUNIT_ASSERT_MESSAGE(error, error.empty());
    transfer.checkReceived();
    // 120 KB at 1 Mbit/s take about a second, most of it with a send
    // waiting: a tick each millisecond, hundreds of them during sends.  A
    // send that held the worker would have left none.
    CPPUNIT_ASSERT_MESSAGE("of " + std::to_string(ticks.load()) + " ticks, " +
                               std::to_string(ticksDuringASend.load()) + " while another task was inside sendTo()",
                           ticksDuringASend.load() >= 10);
  }

  // Two threads and two tasks of one channel send 40 datagrams each on
  // one socket whose buffer is full most of the time: the threads wait
  // in the socket's own wait, the tasks in the channel, one at a time.
  // (Four threads where tasks are not built.)
  void testThreadsAndTasksSendIntoAFullBufferAtOnce() {
    constexpr std::uint32_t kSenders = 4, kEach = 40;
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    NumberedTransfer transfer(kSenders * kEach);
    std::vector<std::string> errors(kSenders);
    auto sendAll = [&](std::uint32_t who) { errors[who] = transfer.sendNumbered(who, kEach); };
    std::vector<std::thread> threads;
    std::vector<TaskHandle> tasks;
    startSenders(*channel, {[&] { sendAll(0); }, [&] { sendAll(1); }}, {[&] { sendAll(2); }, [&] { sendAll(3); }},
                 threads, tasks);
    for (std::thread& thread : threads) thread.join();
    for (TaskHandle& task : tasks) evchan::test::joinWithin(task, evchan::test::generous(30s));
    for (const std::string& error : errors) CPPUNIT_ASSERT_MESSAGE(error, error.empty());
    transfer.checkReceived();
  }

  // Two tasks and two threads send on one socket until a call fails; the
  // buffer stays full, so at any moment most of them wait for room.
  // close() from the test's thread ends every one: each with
  // operation_canceled (it was waiting) or Errc::not_open (it came
  // after), none with another error, none left waiting.  (Four threads
  // where tasks are not built.)
  void testCloseEndsTheSendsWaitingForRoom() {
    std::unique_ptr<EventChannel> channel = evchan::test::makeChannel(2);
    UdpSocket sender = boundSocket(true);
    UdpSocket receiver = boundSocket(false);
    const Address to = receiver.localAddress();
    std::atomic<long> sent{0};
    std::mutex endsMutex;
    std::vector<std::error_code> ends;
    auto sendUntilFailure = [&] {
      const std::vector<unsigned char> datagram(kDatagramSize, 0x5a);
      std::error_code ec;
      while (!ec) {
        if (sender.sendTo(datagram.data(), datagram.size(), to, ec) == datagram.size() && !ec) ++sent;
      }
      const std::lock_guard<std::mutex> lock(endsMutex);
      ends.push_back(ec);
    };
    std::vector<std::thread> threads;
    std::vector<TaskHandle> tasks;
    startSenders(*channel, {sendUntilFailure, sendUntilFailure}, {sendUntilFailure, sendUntilFailure}, threads, tasks);
    // Past the buffer's few datagrams: the senders are waiting their turns.
    CPPUNIT_ASSERT(evchan::test::eventually([&] { return sent.load() >= 20; }));
    sender.close();
    for (std::thread& thread : threads) thread.join();
    for (TaskHandle& task : tasks) evchan::test::joinWithin(task, evchan::test::generous(10s));
    CPPUNIT_ASSERT_EQUAL(std::size_t{4}, ends.size());
    for (const std::error_code& ec : ends) {
      CPPUNIT_ASSERT_MESSAGE(ec.message(), ec == std::errc::operation_canceled || ec == Errc::not_open);
    }
  }

 private:
  // Starts `onThreads` on threads of their own and `inTasks` as tasks of
  // `channel`, or on threads too where tasks are not built.
  static void startSenders(EventChannel& channel, const std::vector<std::function<void()>>& onThreads,
                           const std::vector<std::function<void()>>& inTasks, std::vector<std::thread>& threads,
                           std::vector<TaskHandle>& tasks) {
    std::vector<std::function<void()>> threadBodies = onThreads;
    for (const std::function<void()>& body : inTasks) {
      std::error_code spawned;
      TaskHandle task = channel.spawn(body, {}, spawned);
      if (spawned == std::errc::function_not_supported) {
        threadBodies.push_back(body);
        continue;
      }
      ASSERT_NO_ERROR(spawned);
      tasks.push_back(std::move(task));
    }
    for (const std::function<void()>& body : threadBodies) threads.emplace_back(body);
  }
};

CPPUNIT_TEST_SUITE_REGISTRATION(UdpFullSendBufferTest);

}  // namespace
