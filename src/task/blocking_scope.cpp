// SPDX-License-Identifier: Apache-2.0
// BlockingScope: counts a channel's worker as blocked (evchan::blocking()).
#include <evchan/blocking.h>

#include "channel/channel_core.h"

namespace evchan {

BlockingScope::BlockingScope() noexcept { detail::ChannelCore::enterBlocking(); }

BlockingScope::~BlockingScope() { detail::ChannelCore::leaveBlocking(); }

}  // namespace evchan
