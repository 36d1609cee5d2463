// SPDX-License-Identifier: Apache-2.0
// Internal: what a ShmStream owns: its connection, held by the calls under
// way against a close() on another thread.
#ifndef EVCHAN_SRC_NET_SHM_GATE_H
#define EVCHAN_SRC_NET_SHM_GATE_H

#include <atomic>
#include <memory>

#include "linux/shm_connection.h"

namespace evchan::detail {

/// Which count a call pins: the stream's reader and its writer (one of
/// each at a time) count on cache lines of their own, so that a reader and
/// a writer on two CPUs never share one; everything else counts on a third.
enum class ShmLane { Read = 0, Write = 1, Other = 2 };

/// Owns a ShmStream's connection.  Every call pins it (ShmPin) for its
/// whole length, its sleeps on a doorbell included.  close() unhooks it, so
/// that later calls see a closed stream, cancels both doorbells (a call
/// asleep on one returns at once, one about to sleep does not sleep: its
/// cancel mark is older), waits for the pins to go and destroys it.
class ShmGate {
 public:
  explicit ShmGate(std::unique_ptr<ShmConnection> connection) noexcept;
  /// close().
  ~ShmGate();
  ShmGate(const ShmGate&) = delete;
  ShmGate& operator=(const ShmGate&) = delete;

  bool open() const noexcept { return connection_.load(std::memory_order_acquire) != nullptr; }

  /// Ends the calls under way, refuses new ones, waits until they have left
  /// (a task yields meanwhile) and destroys the connection.  A close()
  /// that finds another one under way waits until it is done, so that the
  /// gate (the destructor closes) outlives that close()'s last access.
  void close() noexcept;

 private:
  friend class ShmPin;
  struct alignas(64) Count {
    std::atomic<unsigned> value{0};
  };

  // The pins and close() pair their atomics like SocketPin and
  // SocketStateSlot::take(): a pin counts itself, then reads the
  // connection; close() unhooks the connection, then reads the counts.
  std::atomic<ShmConnection*> connection_;
  mutable Count pins_[3];
  std::atomic<unsigned> closers_{0};
};

/// Holds a stream's connection against a concurrent close(); get() is null
/// when the stream is closed (or `gate` null: a default-constructed or
/// moved-from stream).
class ShmPin {
 public:
  ShmPin(const ShmGate* gate, ShmLane lane) noexcept;
  ~ShmPin();
  ShmPin(const ShmPin&) = delete;
  ShmPin& operator=(const ShmPin&) = delete;

  ShmConnection* get() const noexcept { return connection_; }
  /// Another pin of the same lane was held when this one was taken: for
  /// the Read and Write lanes, two reads (or two writes) at once.
  bool laneShared() const noexcept { return laneShared_; }

  /// A close() began since the pin was taken.  A call reads its cancel
  /// mark, then asks this: close() unhooks the connection before it
  /// cancels the doorbells, so a mark read too late to be cancelled is
  /// followed by `true` here.
  bool closing() const noexcept { return gate_->connection_.load(std::memory_order_seq_cst) == nullptr; }

 private:
  const ShmGate* gate_ = nullptr;
  std::atomic<unsigned>* count_ = nullptr;
  ShmConnection* connection_ = nullptr;
  bool laneShared_ = false;
};

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_NET_SHM_GATE_H
