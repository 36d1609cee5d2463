// SPDX-License-Identifier: Apache-2.0
#include "net/tls_bio.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace evchan::detail {

bool TlsBytes::reserveEmpty(std::size_t size) noexcept {
  clear();
  if (capacity >= size) return true;
  std::unique_ptr<unsigned char[]> block(new (std::nothrow) unsigned char[size]);
  if (!block) return false;
  data = std::move(block);
  capacity = size;
  return true;
}

bool TlsBytes::append(const void* bytes, std::size_t size) noexcept {
  if (size == 0) return true;
  if (capacity - end < size) {
    const std::size_t kept = this->size();
    if (capacity - kept >= size) {
      std::memmove(data.get(), front(), kept);  // room enough once moved to the start
    } else {
      const std::size_t grown = std::max(capacity * 2, kept + size);
      std::unique_ptr<unsigned char[]> block(new (std::nothrow) unsigned char[grown]);
      if (!block) return false;
      if (kept > 0) std::memcpy(block.get(), front(), kept);
      data = std::move(block);
      capacity = grown;
    }
    begin = 0;
    end = kept;
  }
  std::memcpy(data.get() + end, bytes, size);
  end += size;
  return true;
}

namespace {

TlsBytes& bytesOf(BIO* bio) noexcept { return *static_cast<TlsBytes*>(BIO_get_data(bio)); }

int readInput(BIO* bio, char* out, std::size_t size, std::size_t* read) {
  BIO_clear_retry_flags(bio);
  TlsBytes& input = bytesOf(bio);
  *read = 0;
  if (input.empty()) {
    BIO_set_retry_read(bio);
    return 0;
  }
  const std::size_t n = std::min(size, input.size());
  std::memcpy(out, input.front(), n);
  input.begin += n;
  if (input.empty()) input.clear();
  *read = n;
  return 1;
}

int writeOutput(BIO* bio, const char* in, std::size_t size, std::size_t* written) {
  BIO_clear_retry_flags(bio);
  *written = 0;
  if (!bytesOf(bio).append(in, size)) return 0;
  *written = size;
  return 1;
}

// What OpenSSL asks of the BIOs: what is pending, and flushes (nothing to
// do: the stream sends what was written).  Never an end: the lower
// stream's end is found, and reported, by the call that reads it.
long control(BIO* bio, int command, long, void*) {
  switch (command) {
    case BIO_CTRL_PENDING:
      return static_cast<long>(bytesOf(bio).size());
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

int create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* makeMethod(const char* name, bool input) noexcept {
  BIO_METHOD* method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
  if (method == nullptr) return nullptr;
  const bool made = (input ? BIO_meth_set_read_ex(method, readInput) : BIO_meth_set_write_ex(method, writeOutput)) == 1 &&
                    BIO_meth_set_ctrl(method, control) == 1 && BIO_meth_set_create(method, create) == 1;
  if (made) return method;
  BIO_meth_free(method);
  return nullptr;
}

BIO* newBio(const BIO_METHOD* method, TlsBytes& bytes) noexcept {
  if (method == nullptr) return nullptr;
  BIO* bio = BIO_new(method);
  if (bio != nullptr) BIO_set_data(bio, &bytes);
  return bio;
}

}  // namespace

// The methods are made once and kept for the process's life, as OpenSSL's
// own are.
BIO* newTlsInputBio(TlsBytes& input) noexcept {
  static const BIO_METHOD* const method = makeMethod("evchan TLS input", true);
  return newBio(method, input);
}

BIO* newTlsOutputBio(TlsBytes& output) noexcept {
  static const BIO_METHOD* const method = makeMethod("evchan TLS output", false);
  return newBio(method, output);
}

}  // namespace evchan::detail
