// SPDX-License-Identifier: Apache-2.0
// ShmGate: a ShmStream's close() racing the calls of other threads and tasks.
#include "net/shm_gate.h"

#include "net/close_wait.h"

namespace evchan::detail {

ShmGate::ShmGate(std::unique_ptr<ShmConnection> connection) noexcept : connection_(connection.release()) {}

ShmGate::~ShmGate() { close(); }

void ShmGate::close() noexcept {
  closers_.fetch_add(1, std::memory_order_seq_cst);
  std::unique_ptr<ShmConnection> connection(connection_.exchange(nullptr, std::memory_order_seq_cst));
  if (!connection) {
    closers_.fetch_sub(1, std::memory_order_release);
    waitUntil([&] { return closers_.load(std::memory_order_acquire) == 0; });
    return;
  }
  connection->cancelCalls();
  waitUntil([&] {
    for (const Count& pins : pins_) {
      if (pins.value.load(std::memory_order_seq_cst) != 0) return false;
    }
    return true;
  });
  connection.reset();  // the peer reads the end of the stream
  closers_.fetch_sub(1, std::memory_order_release);  // the last access to the gate
}

ShmPin::ShmPin(const ShmGate* gate, ShmLane lane) noexcept {
  if (gate == nullptr) return;
  gate_ = gate;
  count_ = &gate->pins_[static_cast<int>(lane)].value;
  laneShared_ = count_->fetch_add(1, std::memory_order_seq_cst) != 0;
  connection_ = gate->connection_.load(std::memory_order_seq_cst);
  if (connection_ == nullptr) {
    count_->fetch_sub(1, std::memory_order_release);
    count_ = nullptr;
  }
}

ShmPin::~ShmPin() {
  // Release: what this call did with the connection happens before close()
  // destroys it.
  if (count_ != nullptr) count_->fetch_sub(1, std::memory_order_release);
}

}  // namespace evchan::detail
