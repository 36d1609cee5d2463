// SPDX-License-Identifier: Apache-2.0
// libuv: one uv_loop_t on its own thread.  Reads with uv_read_start into a
// per-connection buffer and writes back with uv_write (which tries the
// send at once and queues only what does not fit).  A uv_async_t stops it.
#include <uv.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "servers/echo_server.h"

namespace bench {
namespace {

void check(int status, const char* what) {
  if (status < 0) throw std::runtime_error(std::string("libuv ") + what + ": " + uv_strerror(status));
}

class LibuvServer final : public EchoServer {
 public:
  ~LibuvServer() override { stop(); }

  int start(int port) override {
    check(uv_loop_init(&loop_), "loop_init");
    loopOpen_ = true;
    loop_.data = this;
    check(uv_tcp_init(&loop_, &listener_), "tcp_init");
    listener_.data = this;
    sockaddr_in address{};
    check(uv_ip4_addr("127.0.0.1", port, &address), "ip4_addr");
    check(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&address), 0), "bind");
    check(uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), kListenBacklog, onConnection), "listen");
    int length = sizeof address;
    check(uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&address), &length), "getsockname");
    check(uv_async_init(&loop_, &stop_, onStop), "async_init");
    stop_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
    return ntohs(address.sin_port);
  }

  void stop() override {
    if (thread_.joinable()) {
      uv_async_send(&stop_);
      thread_.join();  // uv_run returns once every handle is closed
    }
    if (loopOpen_) {
      uv_loop_close(&loop_);
      loopOpen_ = false;
    }
  }

 private:
  struct Connection {
    uv_tcp_t tcp;
    uv_write_t request;
    bool writing = false;
    std::vector<char> queued;  // read while a write was in flight
    std::vector<char> inFlight;
    char buffer[kReadBufferSize];
  };

  static void onConnection(uv_stream_t* server, int status) {
    if (status < 0) return;
    auto* c = new Connection;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), onClosed);
      return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), onAlloc, onRead);
  }

  static void onAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
    auto* c = static_cast<Connection*>(handle->data);
    *buf = uv_buf_init(c->buffer, sizeof c->buffer);
  }

  static void onRead(uv_stream_t* stream, ssize_t n, const uv_buf_t*) {
    auto* c = static_cast<Connection*>(stream->data);
    if (n < 0) {  // UV_EOF when the client leaves
      closeConnection(c);
      return;
    }
    if (n == 0) return;
    if (c->writing) {
      c->queued.insert(c->queued.end(), c->buffer, c->buffer + n);
      return;
    }
    c->inFlight.assign(c->buffer, c->buffer + n);
    startWrite(c);
  }

  static void startWrite(Connection* c) {
    uv_buf_t buf = uv_buf_init(c->inFlight.data(), static_cast<unsigned>(c->inFlight.size()));
    c->writing = true;
    if (uv_write(&c->request, reinterpret_cast<uv_stream_t*>(&c->tcp), &buf, 1, onWritten) != 0) {
      c->writing = false;
      closeConnection(c);
    }
  }

  static void onWritten(uv_write_t* request, int status) {
    auto* c = static_cast<Connection*>(request->handle->data);
    c->writing = false;
    if (status < 0) {
      closeConnection(c);
      return;
    }
    if (!c->queued.empty()) {
      c->inFlight.swap(c->queued);
      c->queued.clear();
      startWrite(c);
    }
  }

  static void closeConnection(Connection* c) {
    auto* handle = reinterpret_cast<uv_handle_t*>(&c->tcp);
    if (!uv_is_closing(handle)) uv_close(handle, onClosed);
  }

  static void onClosed(uv_handle_t* handle) { delete static_cast<Connection*>(handle->data); }

  // On the loop thread: close every handle so that uv_run returns.
  static void onStop(uv_async_t* async) {
    uv_walk(async->loop, [](uv_handle_t* handle, void*) {
      if (uv_is_closing(handle)) return;
      uv_close(handle, handle->type == UV_TCP && handle->data != handle->loop->data ? onClosed : nullptr);
    }, nullptr);
  }

  uv_loop_t loop_{};
  bool loopOpen_ = false;
  uv_tcp_t listener_{};
  uv_async_t stop_{};
  std::thread thread_;
};

}  // namespace

std::unique_ptr<EchoServer> makeLibuvServer() { return std::make_unique<LibuvServer>(); }

}  // namespace bench
