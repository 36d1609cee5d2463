// SPDX-License-Identifier: Apache-2.0
// Boost.Asio (header-only): one io_context run by one thread.  Each
// connection loops async_read_some -> async_write (the whole buffer) ->
// async_read_some; an acceptor loop takes new connections.
#include <boost/asio.hpp>

#include <memory>
#include <thread>

#include "servers/echo_server.h"

namespace bench {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() {
    boost::system::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    read();
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buffer_), [self = shared_from_this()](boost::system::error_code ec,
                                                                                std::size_t n) {
      if (!ec) self->write(n);
    });
  }

  void write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(buffer_, n),
                      [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                        if (!ec) self->read();
                      });
  }

  tcp::socket socket_;
  char buffer_[kReadBufferSize];
};

class AsioServer final : public EchoServer {
 public:
  ~AsioServer() override { stop(); }

  int start(int port) override {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(kListenBacklog);
    accept();
    thread_ = std::thread([this] { context_.run(); });
    return acceptor_.local_endpoint().port();
  }

  void stop() override {
    if (!thread_.joinable()) return;
    context_.stop();
    thread_.join();
    acceptor_.close();
    // Destroying the io_context destroys the pending handlers, and with
    // them the last references to the sessions, which close their sockets.
  }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
      if (ec) return;
      std::make_shared<Session>(std::move(socket))->start();
      accept();
    });
  }

  asio::io_context context_{1};
  tcp::acceptor acceptor_{context_};
  std::thread thread_;
};

}  // namespace

std::unique_ptr<EchoServer> makeAsioServer() { return std::make_unique<AsioServer>(); }

}  // namespace bench
