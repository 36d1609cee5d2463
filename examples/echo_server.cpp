// SPDX-License-Identifier: Apache-2.0
// echo_server: the canonical evchan server, stopped cleanly by a signal.
//
//   echo_server [--port N] [--grace-ms N] [--check-descriptors]
//
// An acceptor task and one task per connection, the connections in a
// TaskGroup.  It prints "listening on 127.0.0.1:PORT" and echoes until
// SIGINT or SIGTERM; then it stops accepting, gives the connections a
// grace period (--grace-ms, 500 by default) to end on their own (their
// clients close), cancels the rest, shuts the channel down and prints one
// line: how many connections it served, how many ended on their own and
// how many were cancelled.  Exits 0 when it stopped cleanly.
//
// --check-descriptors counts the process's open descriptors before the
// server starts and after it stopped, prints both, and exits 1 if any was
// left open (the test of the stop sequence uses it).
#include <evchan/evchan.h>

#include <fcntl.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>

namespace {

struct Counts {
  std::atomic<int> accepted{0};
  std::atomic<int> ended{0};      // the client closed (or the connection failed)
  std::atomic<int> cancelled{0};  // still open when the grace period ended
};

// One connection: echo until the client closes or the task is cancelled.
void serve(evchan::TcpSocket peer, Counts& counts) {
  char buffer[4096];
  std::error_code ec;
  for (std::size_t n; (n = peer.readSome(buffer, sizeof buffer, ec)) > 0;) {
    if (peer.writeAll(buffer, n, ec), ec) break;
  }
  ++(ec == std::errc::operation_canceled ? counts.cancelled : counts.ended);
}  // `peer` closes here: a cancelled client reads end of file

// Open descriptors, counted by asking each number below the limit.
int openDescriptors() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  const rlim_t highest = limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > 65536 ? 65536 : limit.rlim_cur;
  int open = 0;
  for (rlim_t fd = 0; fd < highest; ++fd) open += fcntl(static_cast<int>(fd), F_GETFD) != -1;
  return open;
}

int run(int port, std::chrono::milliseconds grace) {
  // First, before any thread exists: SIGINT and SIGTERM are caught from
  // here on, whichever thread the kernel delivers them to.
  evchan::SignalSet stop({SIGINT, SIGTERM});
  evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", port});
  auto channel = evchan::EventChannel::create();
  Counts counts;
  {
    evchan::TaskGroup connections(*channel);
    evchan::TaskHandle acceptor = channel->spawn([&] {
      for (;;) {
        connections.spawn(serve, listener.acceptWithBackoff(), std::ref(counts));
        ++counts.accepted;
      }
    });
    std::printf("listening on 127.0.0.1:%u\n", static_cast<unsigned>(listener.port()));
    std::fflush(stdout);

    const int signal = stop.wait();

    // 1. Stop accepting: the acceptor's wait ends with operation_canceled,
    //    then the listener closes and new clients are refused.
    acceptor.cancel();
    try {
      acceptor.join();
    } catch (const evchan::SystemError& e) {
      if (e.code() != std::errc::operation_canceled) throw;
    }
    listener.close();
    // 2. The grace period: connections whose clients close in time end on
    //    their own; a timer task cancels the others when it runs out.
    evchan::TaskHandle deadline = channel->spawn([&] {
      evchan::this_task::sleepFor(grace);
      connections.cancel();
    });
    connections.join();
    deadline.cancel();  // everything ended before it: it need not wait on
    std::printf("stopped by signal %d: %d connections served, %d ended by their clients, %d cancelled\n", signal,
                counts.accepted.load(), counts.ended.load(), counts.cancelled.load());
  }
  // 3. Nothing is left running: shut the channel down (its destructor
  //    would too) before the listener and the signal set go.
  channel->shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  long graceMs = 500;
  bool checkDescriptors = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--grace-ms") == 0 && i + 1 < argc) {
      graceMs = std::atol(argv[++i]);
    } else if (std::strcmp(argv[i], "--check-descriptors") == 0) {
      checkDescriptors = true;
    } else {
      std::fprintf(stderr, "usage: %s [--port N] [--grace-ms N] [--check-descriptors]\n", argv[0]);
      return 2;
    }
  }
  const int descriptorsBefore = checkDescriptors ? openDescriptors() : 0;
  int status;
  try {
    status = run(port, std::chrono::milliseconds(graceMs));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
  if (checkDescriptors) {
    const int descriptorsAfter = openDescriptors();
    std::printf("descriptors: %d open before, %d after\n", descriptorsBefore, descriptorsAfter);
    if (descriptorsAfter != descriptorsBefore) status = 1;
  }
  return status;
}
