// Host behaviour the suites expect on Windows hosts, and where Wine (which
// runs them in CI) differs from Windows.
#include "support/host_behaviour.h"

#include <winsock2.h>

namespace evchan::test {
namespace {

// Wine's ntdll exports its version; Windows' does not.
bool runningUnderWine() {
  const HMODULE ntdll = GetModuleHandleA("ntdll.dll");
  return ntdll != nullptr && GetProcAddress(ntdll, "wine_get_version") != nullptr;
}

}  // namespace

int addressInUseOsError() { return WSAEADDRINUSE; }

std::string whyCloseWithUnreadDataSendsNoReset() {
  if (runningUnderWine())
    return "under Wine a socket closed with unread data sends FIN, not RST (seen with Wine 8.0)";
  return "";
}

}  // namespace evchan::test
