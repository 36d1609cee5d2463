// SPDX-License-Identifier: Apache-2.0
// APR initialisation and per-object pools.
#include "apr/apr_runtime.h"

#include <apr_general.h>

#include <evchan/error.h>

namespace evchan::detail {
namespace {

// apr_initialize() is reference counted and cheap after the first call, but
// not safe to race; a function-local static serialises the first call.  APR
// is never terminated: objects may outlive any static destructor we could
// hook, and the OS reclaims the global pool at exit.
apr_status_t initializeAprOnce() noexcept {
  static const apr_status_t status = apr_initialize();
  return status;
}

}  // namespace

PoolPtr createPool(std::error_code& ec) noexcept {
  if (apr_status_t status = initializeAprOnce(); status != APR_SUCCESS) {
    ec = makeAprError(status);
    return nullptr;
  }
  apr_pool_t* pool = nullptr;
  if (apr_status_t status = apr_pool_create_unmanaged_ex(&pool, nullptr, nullptr);
      status != APR_SUCCESS) {
    ec = makeAprError(status);
    return nullptr;
  }
  ec.clear();
  return PoolPtr(pool);
}

}  // namespace evchan::detail
