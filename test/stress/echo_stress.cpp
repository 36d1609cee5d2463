// SPDX-License-Identifier: Apache-2.0
// echo_stress: the standing stress suite ("make stress"; .ci/run runs
// --short).  For each backend, through evchan's public API only:
//
//   echo       N connections at once, each served by a task that echoes
//              what it reads; every client sends a stream whose bytes are a
//              function of (connection, offset) and checks every byte that
//              comes back: lost = sent but never echoed, corrupted = echoed
//              wrong.
//   half-close N clients shut down writing mid-stream while their echo is
//              still in flight; they must still get every byte back.
//   reset      N clients write a little and reset the connection (SO_LINGER
//              0); the server must see only clean errors (end of stream,
//              connection reset, broken pipe).
//   parked     many tasks (default 100,000) parked in sleepFor, Mutex,
//              ConditionVariable, Notification and socket reads, unwound
//              by shutdown(): every one must end with operation_canceled.
//
// The clients run in a child process (this program re-executed with
// --client), so that each side has its own descriptor table.  Both raise
// RLIMIT_NOFILE to the hard limit and the connection count is scaled down
// (with a message) when that is too low; select runs at its FD_SETSIZE
// limit.  Descriptors open in this process are counted before and after
// each backend.
//
//   echo_stress [--short] [--connections N] [--kib K] [--tasks N] [--backend NAME]...
//
// Exits 0 when nothing was lost, corrupted, unclean or leaked; 1 otherwise.
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <evchan/evchan.h>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kChunk = 4096;
// A patience that only a hang exceeds; nothing is asserted about speed.
constexpr auto kIoPatience = std::chrono::seconds(120);

unsigned char patternByte(std::uint64_t connection, std::uint64_t offset) {
  std::uint64_t x = (connection + 1) * 0x9e3779b97f4a7c15ULL ^ (offset >> 3) * 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 29;
  return static_cast<unsigned char>((x >> ((offset & 7) * 8)) & 0xff);
}

double secondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

long raiseDescriptorLimit() {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return static_cast<long>(limit.rlim_cur);
}

// Open descriptors of this process, and how many of them are below `below`.
long openDescriptors(long below = -1, long* counted = nullptr) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  long total = 0, under = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const long fd = std::strtol(entry->d_name, nullptr, 10);
    if (fd == dirfd(dir)) continue;
    ++total;
    if (below >= 0 && fd < below) ++under;
  }
  closedir(dir);
  if (counted != nullptr) *counted = under;
  return total;
}

// ---------------------------------------------------------------- results
struct Counts {
  long connections = 0;
  std::uint64_t checked = 0;
  std::uint64_t lost = 0;
  std::uint64_t corrupted = 0;
  long unclean = 0;  // errors that are not the clean end this phase allows
};

struct Row {
  std::string backend, phase, note;
  Counts counts;
  double seconds = 0;
  bool skipped = false;
  bool failed = false;
};

std::vector<Row> rows;

// ---------------------------------------------------------------- client side (child process)
// Each client task adds its counts here.
struct SharedCounts {
  std::atomic<long> connections{0};
  std::atomic<std::uint64_t> checked{0}, lost{0}, corrupted{0};
  std::atomic<long> unclean{0};
  std::atomic<int> reported{0};

  void error(const char* what, long index, const std::error_code& ec) {
    ++unclean;
    if (reported++ < 5) std::fprintf(stderr, "client %ld: %s: %s\n", index, what, ec.message().c_str());
  }
};

std::uint64_t verify(SharedCounts& counts, long index, std::uint64_t offset, const unsigned char* data,
                     std::size_t size) {
  std::uint64_t wrong = 0;
  for (std::size_t i = 0; i < size; ++i) wrong += data[i] != patternByte(static_cast<std::uint64_t>(index), offset + i);
  counts.checked += size;
  counts.corrupted += wrong;
  return wrong;
}

evchan::TcpSocket connectClient(int port, long index, SharedCounts& counts, std::error_code& ec) {
  evchan::TcpSocket socket = evchan::TcpSocket::connect(evchan::Endpoint{"127.0.0.1", port}, kIoPatience, ec);
  if (ec) {
    counts.error("connect", index, ec);
    return socket;
  }
  socket.setTimeout(kIoPatience, ec);
  ++counts.connections;
  return socket;
}

// Ping-pong: a chunk out, the same chunk back, checked; then FIN and the
// server's FIN back.
void echoClient(int port, long index, std::uint64_t total, SharedCounts& counts) {
  std::error_code ec;
  evchan::TcpSocket socket = connectClient(port, index, counts, ec);
  if (ec) {
    counts.lost += total;
    return;
  }
  unsigned char out[kChunk], in[kChunk];
  std::uint64_t offset = 0;
  for (; offset < total; offset += kChunk) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, total - offset));
    for (std::size_t i = 0; i < n; ++i) out[i] = patternByte(static_cast<std::uint64_t>(index), offset + i);
    socket.writeAll(out, n, ec);
    if (ec) break;
    socket.readExactly(in, n, ec);
    if (ec) break;
    verify(counts, index, offset, in, n);
  }
  if (ec) {
    counts.error("echo", index, ec);
    counts.lost += total - offset;
    return;
  }
  socket.shutdownWrite(ec);
  if (!ec) socket.readSome(in, sizeof in, ec);
  if (ec != evchan::Errc::end_of_stream) counts.error("expected end of stream", index, ec);
}

// Writes `total` bytes in a task of its own, shuts down writing while the
// echo is still under way and reads the echo until end of stream.
void halfCloseClient(evchan::EventChannel& channel, int port, long index, std::uint64_t total, SharedCounts& counts) {
  std::error_code ec;
  auto socket = std::make_shared<evchan::TcpSocket>(connectClient(port, index, counts, ec));
  if (ec) {
    counts.lost += total;
    return;
  }
  evchan::TaskHandle writer = channel.spawn([socket, index, total, &counts] {
    unsigned char out[kChunk];
    std::error_code ec;
    for (std::uint64_t offset = 0; offset < total && !ec; offset += kChunk) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, total - offset));
      for (std::size_t i = 0; i < n; ++i) out[i] = patternByte(static_cast<std::uint64_t>(index), offset + i);
      socket->writeAll(out, n, ec);
    }
    if (!ec) socket->shutdownWrite(ec);
    if (ec) counts.error("write before half-close", index, ec);
  });
  unsigned char in[kChunk];
  std::uint64_t received = 0;
  for (;;) {
    const std::size_t n = socket->readSome(in, sizeof in, ec);
    if (ec) break;
    verify(counts, index, received, in, n);
    received += n;
  }
  writer.join();
  if (ec != evchan::Errc::end_of_stream) counts.error("read after half-close", index, ec);
  if (received < total) counts.lost += total - received;
  if (received > total) counts.corrupted += received - total;
}

// Plain sockets: connect all, write a little on each, reset each.  The
// reset is the point, so these use SO_LINGER directly.
void resetStorm(int port, long count, SharedCounts& counts) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  for (long i = 0; i < count; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      counts.error("connect", i, std::error_code(errno, std::generic_category()));
      if (fd >= 0) close(fd);
      continue;
    }
    fds.push_back(fd);
    ++counts.connections;
  }
  unsigned char out[kChunk];
  for (std::size_t i = 0; i < fds.size(); ++i) {
    const std::size_t n = 1 + (i * 977) % kChunk;  // 1 byte to a full chunk, mid-stream
    for (std::size_t j = 0; j < n; ++j) out[j] = patternByte(i, j);
    if (i % 3 != 0) (void)send(fds[i], out, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  // Give the server some of the data in flight before the resets.
  std::this_thread::sleep_for(20ms);
  for (int fd : fds) {
    const linger abort{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
    close(fd);
  }
}

int clientMain(const std::string& phase, int port, long count, std::uint64_t bytes, int resultFd) {
  raiseDescriptorLimit();
  SharedCounts counts;
  if (phase == "reset") {
    resetStorm(port, count, counts);
  } else {
    std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create();
    std::vector<evchan::TaskHandle> clients;
    clients.reserve(static_cast<std::size_t>(count));
    for (long i = 0; i < count; ++i) {
      // Lengths vary per connection so that the streams end at different times.
      const std::uint64_t total = bytes / 2 + (bytes / 2) * static_cast<std::uint64_t>(i % 7) / 6;
      if (phase == "echo") {
        clients.push_back(channel->spawn([=, &counts] { echoClient(port, i, total, counts); }));
      } else {
        clients.push_back(channel->spawn([=, &counts, &channel] { halfCloseClient(*channel, port, i, total, counts); }));
      }
    }
    for (evchan::TaskHandle& client : clients) client.join();
    channel->shutdown();
  }
  char line[256];
  const int length = std::snprintf(line, sizeof line, "%ld %" PRIu64 " %" PRIu64 " %" PRIu64 " %ld\n",
                                   counts.connections.load(), counts.checked.load(), counts.lost.load(),
                                   counts.corrupted.load(), counts.unclean.load());
  return write(resultFd, line, static_cast<std::size_t>(length)) == length ? 0 : 1;
}

// ---------------------------------------------------------------- server side (this process)
struct ServerOutcomes {
  std::atomic<long> accepted{0}, cleanEnds{0}, resets{0}, unexpected{0};
  std::atomic<int> reported{0};

  void record(const std::error_code& ec) {
    if (ec == evchan::Errc::end_of_stream) {
      ++cleanEnds;
    } else if (ec == std::errc::connection_reset || ec == std::errc::broken_pipe) {
      ++resets;
    } else {
      ++unexpected;
      if (reported++ < 5) std::fprintf(stderr, "server: unexpected error: %s\n", ec.message().c_str());
    }
  }
};

void echoServerTask(const std::shared_ptr<evchan::TcpSocket>& socket, ServerOutcomes& outcomes) {
  char buffer[8192];
  std::error_code ec;
  for (;;) {
    const std::size_t n = socket->readSome(buffer, sizeof buffer, ec);
    if (ec) break;
    socket->writeAll(buffer, n, ec);
    if (ec) break;
  }
  outcomes.record(ec);
}

// Runs this program with --client in a child and returns its pid; its
// result line arrives on *resultFd.
pid_t startClients(const std::string& phase, int port, long count, std::uint64_t bytes, int* resultFd) {
  int pipeFds[2];
  if (pipe2(pipeFds, O_CLOEXEC) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    const int writeEnd = dup(pipeFds[1]);  // without O_CLOEXEC: survives the exec
    const std::string args[] = {"--client", phase, std::to_string(port), std::to_string(count),
                                std::to_string(bytes), std::to_string(writeEnd)};
    // The running binary itself, even if a rebuild replaced its file.
    char self[] = "/proc/self/exe";
    std::vector<char*> argv{self};
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(self, argv.data());
    _exit(127);
  }
  close(pipeFds[1]);
  *resultFd = pipeFds[0];
  if (pid < 0) close(pipeFds[0]);
  return pid;
}

// One phase against the channel's server: accepts and echoes until the
// clients' process has ended and every server task is done.
Row runPhase(evchan::EventChannel& channel, evchan::TcpListener& listener, const std::string& backend,
             const std::string& phase, long connections, std::uint64_t bytes) {
  Row row{backend, phase, "", {}, 0, false, false};
  const auto started = Clock::now();
  ServerOutcomes outcomes;
  std::atomic<bool> clientsDone{false};
  std::mutex handlesMutex;
  std::vector<evchan::TaskHandle> handles;
  listener.setTimeout(100ms);
  evchan::TaskHandle acceptor = channel.spawn([&] {
    for (;;) {
      std::error_code ec;
      evchan::TcpSocket accepted = listener.accept(ec);
      if (ec == std::errc::timed_out) {
        if (clientsDone.load()) return;
        continue;
      }
      if (ec) {
        outcomes.record(ec);
        if (clientsDone.load()) return;
        continue;
      }
      ++outcomes.accepted;
      auto socket = std::make_shared<evchan::TcpSocket>(std::move(accepted));
      evchan::TaskHandle handle = channel.spawn([socket, &outcomes] { echoServerTask(socket, outcomes); });
      std::lock_guard<std::mutex> lock(handlesMutex);
      handles.push_back(std::move(handle));
    }
  });

  int resultFd = -1;
  const pid_t child = startClients(phase, listener.port(), connections, bytes, &resultFd);
  int status = 0;
  if (child > 0) {
    const auto deadline = Clock::now() + kIoPatience * 4;
    while (waitpid(child, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        std::fprintf(stderr, "%s %s: the clients hung; killing them\n", backend.c_str(), phase.c_str());
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  clientsDone = true;
  acceptor.join();
  for (evchan::TaskHandle& handle : handles) handle.join();
  row.seconds = secondsSince(started);

  char line[256] = {};
  const ssize_t length = resultFd >= 0 ? read(resultFd, line, sizeof line - 1) : -1;
  if (resultFd >= 0) close(resultFd);
  Counts& c = row.counts;
  if (child <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || length <= 0 ||
      std::sscanf(line, "%ld %" SCNu64 " %" SCNu64 " %" SCNu64 " %ld", &c.connections, &c.checked, &c.lost,
                  &c.corrupted, &c.unclean) != 5) {
    row.failed = true;
    row.note = "client process failed";
  }
  // The server's view: every connection ends cleanly; only the reset
  // phase may end in resets.
  c.unclean += outcomes.unexpected;
  if (phase != "reset") c.unclean += outcomes.resets;
  if (phase != "reset" && (outcomes.accepted != connections || c.connections != connections)) {
    row.failed = true;
    row.note = "accepted " + std::to_string(outcomes.accepted.load()) + " of " + std::to_string(connections);
  }
  if (phase == "reset") {
    row.note = std::to_string(outcomes.resets.load()) + " resets, " + std::to_string(outcomes.cleanEnds.load()) +
               " ends seen";
  }
  if (c.lost != 0 || c.corrupted != 0 || c.unclean != 0) row.failed = true;
  return row;
}

// ---------------------------------------------------------------- parked tasks
Row runParked(const std::string& backend, evchan::Backend kind, long tasks, long socketLimit) {
  Row row{backend, "parked", "", {}, 0, false, false};
  const auto started = Clock::now();
  std::error_code ec;
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create({kind}, ec);
  if (ec) {
    row.skipped = true;
    row.note = ec.message();
    return row;
  }
  evchan::Mutex heldMutex, cvMutex;
  evchan::ConditionVariable condition;
  evchan::Notification notification, release;
  std::atomic<long> waiting{0}, canceled{0}, unwound{0}, unexpected{0};
  std::atomic<long> unexpectedByKind[5] = {};
  // A Mutex waiter may be handed the lock by the holder that shutdown()
  // unwinds before its own cancellation lands: it then ends normally.
  std::atomic<long> handedLock{0};

  // The socket readers' peers, kept open here so that the reads park.
  const long pairs = std::min(tasks / 50, socketLimit);  // 1 task in 50, at most socketLimit
  evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0}, 4096);
  std::vector<evchan::TcpSocket> peers;
  std::vector<std::shared_ptr<evchan::TcpSocket>> served;
  for (long i = 0; i < pairs; ++i) {
    peers.push_back(evchan::TcpSocket::connect(listener.localAddress()));
    served.push_back(std::make_shared<evchan::TcpSocket>(listener.accept()));
  }
  listener.close();

  struct Unwound {
    std::atomic<long>& counter;
    ~Unwound() { ++counter; }
  };
  // One task holds heldMutex while it waits for `release`, which never comes.
  std::atomic<bool> held{false};
  channel->spawn([&] {
    Unwound guard{unwound};
    try {
      std::lock_guard<evchan::Mutex> lock(heldMutex);
      held = true;
      release.wait();
    } catch (const evchan::SystemError& e) {
      if (e.code() != std::errc::operation_canceled) ++unexpected;
    }
  });
  while (!held) std::this_thread::sleep_for(1ms);

  long sockets = 0;
  for (long i = 0; i < tasks; ++i) {
    std::shared_ptr<evchan::TcpSocket> socket;
    int kind = static_cast<int>(i % 5);
    if (kind == 4) {
      if (sockets < pairs) socket = served[static_cast<std::size_t>(sockets++)];
      else kind = static_cast<int>(i % 4);
    }
    channel->spawn([&, kind, socket] {
      Unwound guard{unwound};
      ++waiting;
      try {
        switch (kind) {
          case 0: evchan::this_task::sleepFor(std::chrono::hours(1)); break;
          case 1: {
            std::lock_guard<evchan::Mutex> lock(heldMutex);
            ++handedLock;
            return;
          }
          case 2: {
            std::unique_lock<evchan::Mutex> lock(cvMutex);
            condition.wait(lock, [] { return false; });
          } break;
          case 3: notification.wait(); break;
          case 4: {
            char byte;
            std::error_code ec;
            socket->readSome(&byte, 1, ec);
            if (ec == std::errc::operation_canceled || ec == evchan::Errc::channel_shut_down) ++canceled;
            else ++unexpected;
            return;
          }
        }
        ++unexpected;  // a wait that returned normally
        ++unexpectedByKind[kind];
      } catch (const evchan::SystemError& e) {
        if (e.code() == std::errc::operation_canceled) ++canceled;
        else { ++unexpected; ++unexpectedByKind[kind]; }
      }
    });
  }
  while (waiting.load() < tasks) std::this_thread::sleep_for(1ms);
  const auto shutdownStarted = Clock::now();
  channel->shutdown();
  const double shutdownSeconds = secondsSince(shutdownStarted);
  channel.reset();
  served.clear();
  peers.clear();
  row.seconds = secondsSince(started);
  row.counts.connections = pairs;
  row.counts.checked = static_cast<std::uint64_t>(tasks);
  row.counts.unclean = unexpected + (tasks - canceled - handedLock) + (tasks + 1 - unwound);
  char note[160];
  std::snprintf(note, sizeof note, "%ld tasks (%ld on sockets) unwound in %.2f s; %ld handed the Mutex",
                unwound.load() - 1, pairs, shutdownSeconds, handedLock.load());
  row.note = note;
  row.failed = row.counts.unclean != 0;
  if (row.failed) {
    std::fprintf(stderr, "parked %s: unexpected by kind %ld %ld %ld %ld %ld; canceled %ld of %ld; unwound %ld\n",
                 backend.c_str(), unexpectedByKind[0].load(), unexpectedByKind[1].load(), unexpectedByKind[2].load(),
                 unexpectedByKind[3].load(), unexpectedByKind[4].load(), canceled.load(), tasks, unwound.load());
  }
  return row;
}

// ---------------------------------------------------------------- driver
struct Settings {
  long connections = 10000;
  std::uint64_t bytes = 64 * 1024;
  long tasks = 100000;
  std::vector<std::string> backends;
};

// One line as each phase ends, for a long run (the table comes at the end).
void printProgress(const Row& r) {
  std::printf("  %s %s: %.2f s%s\n", r.backend.c_str(), r.phase.c_str(), r.seconds, r.failed ? " FAILED" : "");
  std::fflush(stdout);
}

void runBackend(const std::string& name, const Settings& settings, long descriptorLimit) {
  evchan::Backend kind;
  evchan::backendFromName(name, kind);
  const long fdsBefore = openDescriptors();
  std::error_code ec;
  std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create({kind}, ec);
  if (ec) {
    rows.push_back({name, "all", "skipped: " + ec.message(), {}, 0, true, false});
    return;
  }
  evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", 0}, 4096);
  long connections = settings.connections;
  std::string limitNote;
  // Room for every server socket, the listener and a few spare.
  const long room = descriptorLimit - openDescriptors() - 16;
  if (connections > room) {
    connections = room;
    limitNote = "RLIMIT_NOFILE";
  }
  long socketLimit = 1000;
  if (kind == evchan::Backend::Select) {
    long below = 0;
    openDescriptors(FD_SETSIZE, &below);
    const long free = FD_SETSIZE - below - 4;
    if (connections > free) {
      connections = free;
      limitNote = "FD_SETSIZE";
    }
    socketLimit = std::min(socketLimit, free / 2);
  }
  for (const char* phase : {"echo", "half-close", "reset"}) {
    Row row = runPhase(*channel, listener, name, phase, connections, settings.bytes);
    if (!limitNote.empty()) row.note = (row.note.empty() ? "" : row.note + "; ") + "at the " + limitNote + " limit";
    rows.push_back(row);
    printProgress(row);
  }
  listener.close();
  channel.reset();
  rows.push_back(runParked(name, kind, settings.tasks, socketLimit));
  printProgress(rows.back());
  const long fdsAfter = openDescriptors();
  if (fdsAfter != fdsBefore) {
    rows.push_back({name, "descriptors", std::to_string(fdsBefore) + " open before, " + std::to_string(fdsAfter) +
                   " after: LEAK", {}, 0, false, true});
  }
}

void printTable() {
  std::printf("\n%-12s %-11s %11s %15s %6s %9s %7s %8s  %s\n", "backend", "phase", "connections", "bytes checked",
              "lost", "corrupted", "unclean", "time", "notes");
  for (const Row& r : rows) {
    if (r.skipped) {
      std::printf("%-12s %-11s %11s %15s %6s %9s %7s %8s  %s\n", r.backend.c_str(), r.phase.c_str(), "-", "-", "-",
                  "-", "-", "-", r.note.c_str());
      continue;
    }
    const Counts& c = r.counts;
    std::printf("%-12s %-11s %11ld %15" PRIu64 " %6" PRIu64 " %9" PRIu64 " %7ld %7.2fs  %s%s\n", r.backend.c_str(),
                r.phase.c_str(), c.connections, c.checked, c.lost, c.corrupted, c.unclean, r.seconds,
                r.failed ? "FAILED " : "", r.note.c_str());
  }
  std::printf("(parked: \"connections\" = socket readers, \"bytes checked\" = tasks parked)\n");
}

long parsePositive(const char* text) {
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value <= 0) {
    std::fprintf(stderr, "echo_stress: not a positive number: %s\n", text);
    std::exit(2);
  }
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 7 && std::string(argv[1]) == "--client") {
    return clientMain(argv[2], static_cast<int>(parsePositive(argv[3])), parsePositive(argv[4]),
                      static_cast<std::uint64_t>(parsePositive(argv[5])), static_cast<int>(parsePositive(argv[6])));
  }
  Settings settings;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--short") {
      settings.connections = 500;
      settings.tasks = 10000;
    } else if (i + 1 < argc && arg == "--connections") {
      settings.connections = parsePositive(argv[++i]);
    } else if (i + 1 < argc && arg == "--kib") {
      settings.bytes = static_cast<std::uint64_t>(parsePositive(argv[++i])) * 1024;
    } else if (i + 1 < argc && arg == "--tasks") {
      settings.tasks = parsePositive(argv[++i]);
    } else if (i + 1 < argc && arg == "--backend") {
      settings.backends.push_back(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: echo_stress [--short] [--connections N] [--kib K-per-connection] [--tasks N]"
                   " [--backend NAME]...\n");
      return 2;
    }
  }
  if (settings.backends.empty()) settings.backends = {"epoll", "io_uring", "poll", "select", "apr_pollset", "aio"};
  for (const std::string& name : settings.backends) {
    evchan::Backend kind;
    if (!evchan::backendFromName(name, kind) || kind == evchan::Backend::Default) {
      std::fprintf(stderr, "echo_stress: unknown backend %s\n", name.c_str());
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);

  const long limit = raiseDescriptorLimit();
  if (limit < settings.connections + 64) {
    std::printf("RLIMIT_NOFILE hard limit %ld is below %ld connections: scaling down\n", limit, settings.connections);
  }
  std::printf("echo_stress: %ld connections x %" PRIu64 " KiB (half to all of it each), %ld parked tasks, "
              "RLIMIT_NOFILE %ld\n",
              settings.connections, settings.bytes / 1024, settings.tasks, limit);
  const auto started = Clock::now();
  for (const std::string& name : settings.backends) {
    std::fflush(stdout);
    runBackend(name, settings, limit);
  }
  printTable();
  bool failed = false;
  for (const Row& r : rows) failed = failed || r.failed;
  std::printf("%s in %.1f s\n", failed ? "FAILED" : "passed: nothing lost, corrupted, unclean or leaked",
              secondsSince(started));
  return failed ? 1 : 0;
}
