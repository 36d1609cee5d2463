// SPDX-License-Identifier: Apache-2.0
// IPC between two processes: evchan's shared-memory stream, copying
// (readSome/writeAll) and in place (readView/consume, writeView/commit),
// beside an AF_UNIX socketpair and loopback TCP (both with plain blocking
// calls, the kernel's best case).  For each: the round trip of a 64-byte
// ping-pong and the throughput of a one-way stream of 64 KiB writes, then
// the shared-memory stream's ratios to AF_UNIX against the issues'
// targets (copying: round trip at most half, streaming at least twice; in
// place: round trip at most 0.3x, streaming at least 3x).  The streaming
// writer makes its bytes (a fill) and the reader reads each 64-bit word
// once (a sum): into a buffer first when copying, where they lie in the
// ring when in place.  Each is measured twice: with the processes where
// the scheduler puts them, and pinned to two different CPUs (skipped with
// --unpinned-only or a single CPU).
//
//   ipc_bench [--seconds S] [--ring BYTES] [--unpinned-only]
#include <sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <evchan/shm_stream.h>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kPingBytes = 64;
constexpr std::size_t kStreamChunk = 64 * 1024;

double secondsPerRun = 1.0;
bool pinToCpus = false;
bool unpinnedOnly = false;
cpu_set_t startMask;

// When pinning: parent on the first CPU of the starting affinity mask,
// child on the second.  The starting mask, not the current one: a child
// forked by a parent already pinned would find only the parent's CPU.
void pinTo(int which) {
  if (!pinToCpus) return;
  int seen = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &startMask) || seen++ != which) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
    return;
  }
}
std::size_t ringSize = evchan::ShmStream::kDefaultRingSize;

[[noreturn]] void fail(const char* what) {
  std::perror(what);
  std::exit(1);
}

/// What the measurements need of a connection: blocking exact reads and
/// full writes, and a half-close.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual bool readExactly(void* buffer, std::size_t size) = 0;
  virtual std::size_t readSome(void* buffer, std::size_t size) = 0;  // 0 at the end
  virtual void writeAll(const void* buffer, std::size_t size) = 0;
  virtual void shutdownWrite() = 0;
  /// Sends `size` bytes of `fill`, made by the writer: copying, they are
  /// made in a buffer and written from it.
  virtual void writeMade(char fill, std::size_t size) {
    static std::vector<char> made;
    made.resize(std::max(made.size(), size));
    std::memset(made.data(), fill, size);
    writeAll(made.data(), size);
  }
  /// Reads what is there (0 at the end), reading each word once; adds
  /// their sum to `sum`.  Copying: into a buffer first.
  virtual std::size_t readAndSum(std::uint64_t& sum) {
    static std::vector<std::uint64_t> buffer(kStreamChunk / 8);
    const std::size_t n = readSome(buffer.data(), kStreamChunk);
    sum += sumWords(buffer.data(), n);
    return n;
  }

 protected:
  static std::uint64_t sumWords(const void* bytes, std::size_t size) {
    std::uint64_t sum = 0;
    const auto* words = static_cast<const unsigned char*>(bytes);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      std::uint64_t word;
      std::memcpy(&word, words + i, 8);
      sum += word;
    }
    for (; i < size; ++i) sum += words[i];
    return sum;
  }
};

class FdConnection : public Connection {
 public:
  explicit FdConnection(int fd) : fd_(fd) {}
  ~FdConnection() override { close(fd_); }
  bool readExactly(void* buffer, std::size_t size) override {
    for (std::size_t done = 0; done < size;) {
      const std::size_t n = readSome(static_cast<char*>(buffer) + done, size - done);
      if (n == 0) return false;
      done += n;
    }
    return true;
  }
  std::size_t readSome(void* buffer, std::size_t size) override {
    for (;;) {
      const ssize_t n = read(fd_, buffer, size);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) fail("read");
    }
  }
  void writeAll(const void* buffer, std::size_t size) override {
    for (std::size_t done = 0; done < size;) {
      const ssize_t n = send(fd_, static_cast<const char*>(buffer) + done, size - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("send");
      done += static_cast<std::size_t>(n);
    }
  }
  void shutdownWrite() override { shutdown(fd_, SHUT_WR); }

 private:
  int fd_;
};

class ShmConnection : public Connection {
 public:
  explicit ShmConnection(evchan::ShmStream stream) : stream_(std::move(stream)) {}
  bool readExactly(void* buffer, std::size_t size) override {
    std::error_code ec;
    stream_.readExactly(buffer, size, ec);
    return !ec;
  }
  std::size_t readSome(void* buffer, std::size_t size) override {
    std::error_code ec;
    const std::size_t n = stream_.readSome(buffer, size, ec);
    return ec ? 0 : n;
  }
  void writeAll(const void* buffer, std::size_t size) override { stream_.writeAll(buffer, size); }
  void shutdownWrite() override { stream_.shutdownWrite(); }

 protected:
  evchan::ShmStream stream_;
};

/// The same stream, read and written in place: nothing is copied through
/// a buffer of ours.
class ShmInPlaceConnection : public ShmConnection {
 public:
  using ShmConnection::ShmConnection;
  bool readExactly(void* buffer, std::size_t size) override {
    for (std::size_t done = 0; done < size;) {
      std::error_code ec;
      const evchan::ConstBuffer view = stream_.readView(size - done, ec);
      if (ec) return false;
      std::memcpy(static_cast<char*>(buffer) + done, view.data, view.size);
      stream_.consume(view.size);
      done += view.size;
    }
    return true;
  }
  void writeAll(const void* buffer, std::size_t size) override {
    for (std::size_t done = 0; done < size;) {
      const evchan::ShmRoom room = stream_.writeView(size - done);
      std::memcpy(room.data, static_cast<const char*>(buffer) + done, room.size);
      stream_.commit(room.size);
      done += room.size;
    }
  }
  void writeMade(char fill, std::size_t size) override {
    for (std::size_t done = 0; done < size;) {
      const evchan::ShmRoom room = stream_.writeView(size - done);
      std::memset(room.data, fill, room.size);
      stream_.commit(room.size);
      done += room.size;
    }
  }
  std::size_t readAndSum(std::uint64_t& sum) override {
    std::error_code ec;
    const evchan::ConstBuffer view = stream_.readView(kStreamChunk, ec);
    if (ec) return 0;
    sum += sumWords(view.data, view.size);
    stream_.consume(view.size);
    return view.size;
  }
};

/// How a transport makes a connected pair across a fork: `prepare` runs
/// before the fork, then `parentSide` and `childSide` in their processes.
struct Transport {
  const char* name;
  std::function<void()> prepare;
  std::function<std::unique_ptr<Connection>()> parentSide;
  std::function<std::unique_ptr<Connection>()> childSide;
  std::function<void()> cleanup;
};

volatile std::uint64_t sumSink;

// The child's half of both measurements: echo pings, or count a stream
// and report its length.
void serve(Connection& connection) {
  char mode = 0;
  if (!connection.readExactly(&mode, 1)) return;
  if (mode == 'p') {
    char ping[kPingBytes];
    while (connection.readExactly(ping, sizeof ping)) connection.writeAll(ping, sizeof ping);
  } else {
    std::uint64_t total = 0;
    std::uint64_t sum = 0;
    while (std::size_t n = connection.readAndSum(sum)) total += n;
    sumSink = sum;  // the sum is used: the reads cannot be left out
    connection.writeAll(&total, sizeof total);
  }
}

// Runs `measure` against a forked peer over `transport`.
double withPeer(Transport& transport, char mode, const std::function<double(Connection&)>& measure) {
  transport.prepare();
  const pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    pinTo(1);
    std::unique_ptr<Connection> connection = transport.childSide();
    serve(*connection);
    connection.reset();
    _exit(0);
  }
  pinTo(0);
  std::unique_ptr<Connection> connection = transport.parentSide();
  connection->writeAll(&mode, 1);
  const double result = measure(*connection);
  connection.reset();
  int status = 0;
  waitpid(child, &status, 0);
  transport.cleanup();
  return result;
}

// Mean round trip in nanoseconds.
double roundTrip(Connection& connection) {
  char ping[kPingBytes] = {};
  for (int i = 0; i < 2000; ++i) {  // warm-up: page faults, caches, frequency
    connection.writeAll(ping, sizeof ping);
    connection.readExactly(ping, sizeof ping);
  }
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(secondsPerRun);
  std::uint64_t trips = 0;
  auto now = start;
  while (now < end) {
    for (int i = 0; i < 100; ++i) {
      connection.writeAll(ping, sizeof ping);
      connection.readExactly(ping, sizeof ping);
    }
    trips += 100;
    now = Clock::now();
  }
  connection.shutdownWrite();
  return std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(trips);
}

// Megabytes (10^6) per second, until the peer has counted every byte.
double streaming(Connection& connection) {
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(secondsPerRun);
  std::uint64_t sent = 0;
  while (Clock::now() < end) {
    for (int i = 0; i < 16; ++i) connection.writeMade('x', kStreamChunk);
    sent += 16 * kStreamChunk;
  }
  connection.shutdownWrite();
  std::uint64_t counted = 0;
  if (!connection.readExactly(&counted, sizeof counted) || counted != sent) {
    std::fprintf(stderr, "stream: sent %llu bytes, peer counted %llu\n", static_cast<unsigned long long>(sent),
                 static_cast<unsigned long long>(counted));
    std::exit(1);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(sent) / seconds / 1e6;
}

template <typename ShmKind>
Transport shmTransport(const char* transportName) {
  auto listener = std::make_shared<evchan::ShmListener>();
  auto name = std::make_shared<std::string>();
  static int serial = 0;
  return Transport{
      transportName,
      [=] {
        *name = "@evchan-ipc-bench-" + std::to_string(getpid()) + "-" + std::to_string(++serial);
        *listener = evchan::ShmListener::listen(*name);
      },
      [=] { return std::make_unique<ShmKind>(listener->accept()); },
      [=]() -> std::unique_ptr<Connection> {
        listener->close();  // the child's copy only
        std::error_code ec;
        evchan::ShmStream stream = evchan::ShmStream::connect(*name, std::chrono::seconds(10), ringSize, ec);
        if (ec) {
          std::fprintf(stderr, "shm connect: %s\n", ec.message().c_str());
          _exit(1);
        }
        return std::make_unique<ShmKind>(std::move(stream));
      },
      [=] { listener->close(); }};
}

Transport socketpairTransport() {
  auto fds = std::make_shared<std::array<int, 2>>();
  return Transport{"AF_UNIX socketpair",
                   [=] {
                     if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds->data()) != 0) fail("socketpair");
                   },
                   [=] {
                     close((*fds)[1]);
                     return std::make_unique<FdConnection>((*fds)[0]);
                   },
                   [=] {
                     close((*fds)[0]);
                     return std::make_unique<FdConnection>((*fds)[1]);
                   },
                   [] {}};
}

Transport tcpTransport() {
  auto listenFd = std::make_shared<int>(-1);
  auto port = std::make_shared<int>(0);
  auto noDelay = [](int fd) {
    const int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  };
  return Transport{"TCP loopback",
                   [=] {
                     *listenFd = socket(AF_INET, SOCK_STREAM, 0);
                     sockaddr_in address = {};
                     address.sin_family = AF_INET;
                     address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                     socklen_t length = sizeof address;
                     if (*listenFd < 0 || bind(*listenFd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
                         listen(*listenFd, 4) != 0 ||
                         getsockname(*listenFd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
                       fail("tcp listen");
                     *port = ntohs(address.sin_port);
                   },
                   [=] {
                     const int fd = accept(*listenFd, nullptr, nullptr);
                     if (fd < 0) fail("accept");
                     noDelay(fd);
                     return std::make_unique<FdConnection>(fd);
                   },
                   [=] {
                     close(*listenFd);
                     const int fd = socket(AF_INET, SOCK_STREAM, 0);
                     sockaddr_in address = {};
                     address.sin_family = AF_INET;
                     address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                     address.sin_port = htons(static_cast<std::uint16_t>(*port));
                     if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
                       fail("tcp connect");
                     noDelay(fd);
                     return std::make_unique<FdConnection>(fd);
                   },
                   [=] { close(*listenFd); }};
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string option = argv[i];
    if (option == "--seconds" && i + 1 < argc) {
      secondsPerRun = std::atof(argv[++i]);
    } else if (option == "--unpinned-only") {
      unpinnedOnly = true;
    } else if (option == "--ring" && i + 1 < argc) {
      ringSize = static_cast<std::size_t>(std::strtoull(argv[++i], nullptr, 0));
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--ring BYTES] [--unpinned-only]\n", argv[0]);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  sched_getaffinity(0, sizeof startMask, &startMask);
  const bool pinAllowed = CPU_COUNT(&startMask) >= 2 && !unpinnedOnly;
  std::printf("IPC between two processes: %zu-byte ping-pong round trip, %zu KiB streaming; %.1f s each\n",
              kPingBytes, kStreamChunk / 1024, secondsPerRun);
  std::printf("(shared-memory ring %zu KiB per direction; %ld CPUs online)\n", ringSize / 1024,
              sysconf(_SC_NPROCESSORS_ONLN));
  // Two layouts: where the scheduler puts the processes (on a busy
  // machine, often one CPU for both, when spinning cannot help), and one
  // CPU each (what a latency-sensitive deployment does).
  const bool layouts[] = {false, true};
  for (bool pinned : layouts) {
    if (pinned && !pinAllowed) continue;
    pinToCpus = pinned;
    std::printf("\n%s\n", pinned ? "pinned: parent on one CPU, peer on another"
                                   : "unpinned: the scheduler places both processes");
    std::printf("%-24s %14s %16s\n", "transport", "round trip ns", "streaming MB/s");
    Transport transports[] = {shmTransport<ShmConnection>("shared memory"),
                              shmTransport<ShmInPlaceConnection>("shared memory in place"),
                              socketpairTransport(), tcpTransport()};
    double rtt[4], mbps[4];
    for (int t = 0; t < 4; ++t) {
      rtt[t] = withPeer(transports[t], 'p', roundTrip);
      mbps[t] = withPeer(transports[t], 's', streaming);
      std::printf("%-24s %14.0f %16.0f\n", transports[t].name, rtt[t], mbps[t]);
      std::fflush(stdout);
    }
    const auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
    std::printf("shared memory vs AF_UNIX:          round trip x%.2f (target <= 0.50: %s), streaming x%.2f"
                " (target >= 2.0: %s)\n",
                rtt[0] / rtt[2], verdict(rtt[0] / rtt[2] <= 0.5), mbps[0] / mbps[2], verdict(mbps[0] / mbps[2] >= 2.0));
    std::printf("shared memory in place vs AF_UNIX: round trip x%.2f (target <= 0.30: %s), streaming x%.2f"
                " (target >= 3.0: %s)\n",
                rtt[1] / rtt[2], verdict(rtt[1] / rtt[2] <= 0.3), mbps[1] / mbps[2], verdict(mbps[1] / mbps[2] >= 3.0));
    std::printf("shared memory vs TCP:              round trip x%.2f, streaming x%.2f\n", rtt[0] / rtt[3],
                mbps[0] / mbps[3]);
    // Back to the starting mask for the next layout.
    sched_setaffinity(0, sizeof startMask, &startMask);
  }
  return 0;
}
