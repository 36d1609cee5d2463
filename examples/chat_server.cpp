// SPDX-License-Identifier: Apache-2.0
// chat_server: a line-based chat on evchan tasks.  Every line a client
// sends goes to every connected client, prefixed with the sender's name.
//
//   chat_server [PORT]        (default 7000; 0 picks a free port)
//
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.  A
// client's first line is its name; "/quit" leaves.  Try it with
// `nc 127.0.0.1 7000` in two terminals.
//
// Each client has two tasks: a reader that broadcasts its lines, and a
// writer that sends what others said.  The room's member list is guarded
// by an evchan::Mutex, and each client's outbox by one more, with an
// evchan::ConditionVariable to wake its writer: tasks waiting on them are
// suspended, never blocking a worker thread.  A client too slow to keep up
// (more than 1,000 lines queued) is dropped rather than slowing the room.
// SIGINT or SIGTERM tells everyone the server is stopping, ends every
// client's tasks and exits 0.
#include <evchan/evchan.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kMaxLine = 1024;
constexpr std::size_t kMaxQueued = 1000;

// What the room holds of one client: the lines waiting for its writer.
class Outbox {
 public:
  // False when the client is too far behind (it is then closed).
  bool push(const std::string& line) {
    std::lock_guard<evchan::Mutex> lock(mutex_);
    if (closed_) return true;
    if (lines_.size() == kMaxQueued) {
      closed_ = true;
      wakeup_.notifyAll();
      return false;
    }
    lines_.push_back(line);
    wakeup_.notifyOne();
    return true;
  }

  // The next line to send, or false once the outbox is closed and empty.
  bool pop(std::string& line) {
    std::unique_lock<evchan::Mutex> lock(mutex_);
    wakeup_.wait(lock, [&] { return closed_ || !lines_.empty(); });
    if (lines_.empty()) return false;
    line = std::move(lines_.front());
    lines_.pop_front();
    return true;
  }

  void close() {
    std::lock_guard<evchan::Mutex> lock(mutex_);
    closed_ = true;
    wakeup_.notifyAll();
  }

 private:
  evchan::Mutex mutex_;
  evchan::ConditionVariable wakeup_;
  std::deque<std::string> lines_;
  bool closed_ = false;
};

class Room {
 public:
  std::list<std::shared_ptr<Outbox>>::iterator join(std::shared_ptr<Outbox> outbox) {
    std::lock_guard<evchan::Mutex> lock(mutex_);
    return members_.insert(members_.end(), std::move(outbox));
  }

  void leave(std::list<std::shared_ptr<Outbox>>::iterator member) {
    std::lock_guard<evchan::Mutex> lock(mutex_);
    members_.erase(member);
  }

  void broadcast(const std::string& line) {
    std::lock_guard<evchan::Mutex> lock(mutex_);
    for (const std::shared_ptr<Outbox>& outbox : members_) {
      if (!outbox->push(line)) std::fprintf(stderr, "chat_server: dropped a client that fell behind\n");
    }
  }

 private:
  evchan::Mutex mutex_;
  std::list<std::shared_ptr<Outbox>> members_;
};

// Sends the outbox's lines until it is closed (the reader left, or the
// client fell behind), then shuts the connection's sending side.
void writeLines(evchan::TcpSocket& socket, Outbox& outbox) {
  std::string line;
  std::error_code ec;
  while (outbox.pop(line)) {
    if (socket.writeAll(line.data(), line.size(), ec), ec) break;
  }
  outbox.close();
  socket.shutdownWrite(ec);
}

// Takes the client out of the room however serve() ends.
class Membership {
 public:
  Membership(Room& room, std::shared_ptr<Outbox> outbox) : room_(room), outbox_(outbox), member_(room.join(outbox)) {}
  ~Membership() {
    room_.leave(member_);
    outbox_->close();  // the writer sends what is queued, then ends
  }
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

 private:
  Room& room_;
  std::shared_ptr<Outbox> outbox_;
  std::list<std::shared_ptr<Outbox>>::iterator member_;
};

void serve(evchan::TcpSocket accepted, Room& room) {
  // Shared with the writer task, which may outlive this one when the
  // server shuts down.  One task reads while the other writes: allowed.
  auto socket = std::make_shared<evchan::TcpSocket>(std::move(accepted));
  auto outbox = std::make_shared<Outbox>();
  socket->setTimeout(10min);
  evchan::TaskHandle writer =
      evchan::this_task::channel().spawn([socket, outbox] { writeLines(*socket, *outbox); });
  evchan::BufferedReader reader(*socket);
  std::string name;
  {
    Membership membership(room, outbox);
    try {
      outbox->push("name?\n");
      name = reader.readLine(kMaxLine);
      room.broadcast("* " + name + " joined\n");
      for (;;) {
        const std::string line = reader.readLine(kMaxLine);
        if (line == "/quit") break;
        room.broadcast(name + ": " + line + "\n");
      }
    } catch (const evchan::SystemError& e) {
      // The client left (end of stream, reset, timeout, a line too long).
      // Cancellation (shutdown) goes on unwinding.
      if (e.code() == std::errc::operation_canceled) throw;
    }
  }
  writer.join();  // what was queued for the client has been sent
  if (!name.empty()) room.broadcast("* " + name + " left\n");
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 7000;
  try {
    evchan::SignalSet stop({SIGINT, SIGTERM});  // first, before any thread exists
    evchan::TcpListener listener = evchan::TcpListener::listen({"127.0.0.1", port});
    std::unique_ptr<evchan::EventChannel> channel = evchan::EventChannel::create();
    Room room;
    {
      evchan::TaskGroup clients(*channel);
      evchan::TaskHandle acceptor = channel->spawn([&] {
        for (;;) {
          clients.spawn([&room](evchan::TcpSocket socket) { serve(std::move(socket), room); },
                        listener.acceptWithBackoff());
        }
      });
      std::printf("listening on 127.0.0.1:%d\n", listener.port());
      std::fflush(stdout);
      stop.wait();
      room.broadcast("* the server is stopping\n");
      acceptor.cancel();
      clients.cancel();  // chatters never end on their own: the group's join waits for the unwinding only
      try {
        acceptor.join();
      } catch (const evchan::SystemError& e) {
        if (e.code() != std::errc::operation_canceled) throw;
      }
      clients.join();
    }
    channel->shutdown();
    std::printf("stopped\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chat_server: %s\n", e.what());
    return 1;
  }
}
