// SPDX-License-Identifier: Apache-2.0
// Internal: APR initialisation and owned pools.
#ifndef EVCHAN_SRC_APR_APR_RUNTIME_H
#define EVCHAN_SRC_APR_APR_RUNTIME_H

#include <memory>
#include <system_error>

#include <apr_pools.h>

namespace evchan::detail {

struct PoolDeleter {
  void operator()(apr_pool_t* pool) const noexcept { apr_pool_destroy(pool); }
};

/// An owned APR pool; destroying it runs its cleanups (closing sockets).
using PoolPtr = std::unique_ptr<apr_pool_t, PoolDeleter>;

/// Initialises APR once per process (thread-safe) and creates an
/// unmanaged pool on the process's shared allocator, which recycles the
/// blocks of destroyed pools (see apr_runtime.cpp).  Empty with `ec` set
/// on failure.
PoolPtr createPool(std::error_code& ec) noexcept;

}  // namespace evchan::detail

#endif  // EVCHAN_SRC_APR_APR_RUNTIME_H
