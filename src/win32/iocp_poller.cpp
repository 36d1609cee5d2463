// SPDX-License-Identifier: Apache-2.0
// The IOCP backend: Windows performs reads, writes, accepts and connects,
// and file reads and writes at an offset, as overlapped operations and
// reports each one done on an I/O completion port (a completion backend,
// driven by channel/channel_completions.cpp like io_uring).
//
// Ports:
//  * A socket can be associated with one completion port, once, for its
//    whole life, yet a socket moves between channels (WatchHandle).  So
//    every socket is associated with one process-wide port, whose thread
//    (the hub) hands each completion to the port of the channel whose
//    operation it is.  That port is the only one a channel waits on:
//    completions and wake-ups (PostQueuedCompletionStatus) are reaped
//    there in batches (GetQueuedCompletionStatusEx).  The hub costs one
//    hand-over per operation; a channel never sees another's completion.
//  * The shared port and its thread live until the process exits (a
//    socket associated with it stays associated): the library is not
//    meant to be unloaded while channels used it.
// Operations:
//  * One heap record per submit() (the OVERLAPPED first), freed when its
//    completion is reaped.  Everything the operation uses (WSABUFs, the
//    receive's address length, AcceptEx's socket and address room) is in
//    it; the event's buffers stay valid until then (the channel keeps the
//    event in its slot, and the watch alive, until the completion).
//  * A call that fails at once queues no completion: the record is posted
//    to the channel's port with its error, so each submit() completes
//    exactly once through waitCompletions().
//  * cancel() is CancelIoEx on the record's OVERLAPPED.  Closing a socket
//    with operations pending aborts them; their completions still arrive
//    (ERROR_OPERATION_ABORTED, reported as -ECANCELED).
// Results are what channel_completions.cpp expects: bytes, the accepted
// SOCKET, 0, or minus an error: -ECANCELED, -ECONNABORTED (a connection
// reset while it waited to be accepted, which the channel skips), or
// minus the APR status of the Winsock error (APR_OS_START_SYSERR + code),
// which kernelError() turns into the same conditions apr_pollset reports.
// Files:
//  * A file event is an overlapped ReadFile/WriteFile on the file's second
//    handle (win32/overlapped_file.cpp), associated with the shared port
//    like the sockets; it goes back to the channel through its
//    CompletionSink when its completion is reaped.  A file that handle
//    cannot be made for: submitFile() says function_not_supported and the
//    channel runs the event on a worker.
//  * The operation counts as a call on the file (FileState::calls) from
//    submitFile() until the hub sees its completion: File::close() waits
//    for it, so the handle is not closed, nor the File's state freed,
//    while Windows may still use the buffer.  A shutdown cancels the
//    channel's file operations (CancelIoEx); each still completes once,
//    with its result or operation_canceled.
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0600  // GetQueuedCompletionStatusEx, CancelIoEx
#endif
// APR's headers come first: apr.h includes <windows.h> and the socket
// headers only when <windows.h> is not in yet.
#include <apr_portable.h>

#include <winsock2.h>
#include <ws2tcpip.h>
#include <mswsock.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <new>
#include <thread>
#include <utility>

#include <evchan/error.h>
#include <evchan/file_events.h>

#include "apr/file_state.h"
#include "poller/event_access.h"
#include "poller/message_scratch.h"
#include "poller/poller.h"
#include "win32/overlapped_file.h"

namespace evchan::detail {
namespace {

// Completion keys on a channel's own port.
constexpr ULONG_PTR kForwardedKey = 1;  // an operation's completion, from the hub
constexpr ULONG_PTR kFailedKey = 2;     // an operation that failed at once
constexpr ULONG_PTR kWakeKey = 3;       // wakeup()
constexpr ULONG kReapBatch = 64;
// NTSTATUS values in OVERLAPPED::Internal: STATUS_PENDING, and
// STATUS_UNSUCCESSFUL, which submit() puts there first.
constexpr ULONG_PTR kStatusPending = 0x00000103;
constexpr ULONG_PTR kNotWritten = 0xC0000001;
// WSABUFs per gather send (the rest goes in a later send) and the bytes
// one operation moves at most, so that its count fits the int result.
constexpr std::size_t kMaxPieces = 64;
constexpr std::size_t kMaxBytes = 0x7ffff000;
// A stream send completes once Windows has taken all of it: without a
// cap, a large write to a peer that does not read would stay pending as a
// whole instead of completing short as on the other backends.  Sends are
// cut at this size (the channel's caller re-posts the rest).
constexpr std::size_t kMaxSendBytes = std::size_t{1} << 20;
// AcceptEx's room for each address: the largest sockaddr plus 16.
constexpr DWORD kAcceptAddressRoom = sizeof(sockaddr_storage) + 16;

class IocpPoller;

// What every operation's record starts with.
struct Record {
  OVERLAPPED overlapped{};  // first: the OVERLAPPED* a completion names is the record
  IocpPoller* owner = nullptr;
  bool isFile = false;  // a FileOperation, else an Operation
  DWORD failure = 0;    // kFailedKey: the error of the call
  // The submitter and the completion each hold the record; the last to
  // let go frees it (the submitter may look at it after its completion
  // was reaped).
  std::atomic<int> holders{2};
};

// A socket operation.
struct Operation : Record {
  Watch* watch = nullptr;
  unsigned slot = 0;
  SocketOperation::Kind kind = SocketOperation::Kind::Receive;
  SOCKET socket = INVALID_SOCKET;
  WSABUF buffers[kMaxPieces];
  DWORD flags = 0;
  MessageScratch* scratch = nullptr;  // ReceiveMessage
  INT addressLength = 0;              // ReceiveMessage: filled by Windows
  SOCKET accepted = INVALID_SOCKET;   // Accept: the socket AcceptEx connects
  char acceptAddresses[2 * kAcceptAddressRoom];
};

// A file event's ReadFile or WriteFile.
struct FileOperation : Record {
  Event* event = nullptr;
  CompletionSink* sink = nullptr;
  FileState* file = nullptr;  // counted in file->calls until the hub has the completion
  HANDLE handle = nullptr;
  FileOperation* prev = nullptr;  // the poller's list of those Windows has
  FileOperation* next = nullptr;
};

// The process-wide port every socket is associated with, and its thread.
class Hub {
 public:
  static Hub* instance() noexcept {
    static Hub* hub = create();  // never destroyed: sockets stay associated with its port
    return hub;
  }
  HANDLE port() const noexcept { return port_; }

 private:
  static Hub* create() noexcept {
    HANDLE port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port == nullptr) return nullptr;
    Hub* hub = new (std::nothrow) Hub(port);
    if (hub == nullptr) {
      CloseHandle(port);
      return nullptr;
    }
    try {
      std::thread(&Hub::run, hub).detach();
    } catch (...) {
      return nullptr;  // leaked with its port: nothing was associated yet
    }
    return hub;
  }
  explicit Hub(HANDLE port) noexcept : port_(port) {}
  void run() noexcept;

  HANDLE port_;
};

class IocpPoller final : public Poller, public CompletionPoller {
 public:
  ~IocpPoller() override {
    // The channel waits for its operations before it lets the poller go;
    // should one still be under way, its record names us: wait a while.
    std::vector<Completion> done;
    const Deadline giveUp = Clock::now() + std::chrono::seconds(5);
    while (busy() && Clock::now() < giveUp) waitCompletions(done, giveUp);
    if (port_ != nullptr) CloseHandle(port_);
  }

  std::error_code open() noexcept {
    hub_ = Hub::instance();
    // (Made once: a later channel cannot tell why it failed.)
    if (hub_ == nullptr) return std::make_error_code(std::errc::resource_unavailable_try_again);
    port_ = CreateIoCompletionPort(INVALID_HANDLE_VALUE, nullptr, 0, 1);
    if (port_ == nullptr) return makeAprError(APR_FROM_OS_ERROR(GetLastError()));
    return {};
  }

  HANDLE port() const noexcept { return port_; }

  // ---- Poller
  Backend kind() const noexcept override { return Backend::Iocp; }
  bool edgeTriggered() const noexcept override { return true; }  // never asks for setInterest()
  std::error_code add(Watch& watch) noexcept override {
    // A socket used by another channel before is associated already (the
    // port is the same: Windows refuses a second association).
    if (CreateIoCompletionPort(reinterpret_cast<HANDLE>(watch.fd), hub_->port(), 0, 0) == nullptr &&
        GetLastError() != ERROR_INVALID_PARAMETER) {
      return makeAprError(APR_FROM_OS_ERROR(GetLastError()));
    }
    return {};
  }
  std::error_code setInterest(Watch&, unsigned) noexcept override { return {}; }
  void remove(Watch&) noexcept override {}  // closing the socket ends its association
  std::error_code wait(std::vector<Readiness>& ready, Deadline) noexcept override {
    ready.clear();
    return std::make_error_code(std::errc::operation_not_supported);
  }
  CompletionPoller* completions() noexcept override { return this; }

  void wakeup() noexcept override {
    if (wakeQueued_.exchange(true, std::memory_order_acq_rel)) return;  // one wakes it
    if (!PostQueuedCompletionStatus(port_, 0, kWakeKey, nullptr)) wakeQueued_.store(false, std::memory_order_release);
  }

  // ---- CompletionPoller
  std::error_code submit(const SocketOperation& op, Watch& watch, unsigned slot) noexcept override {
    if (op.scratch != nullptr && op.scratch->control != nullptr) {
      return std::make_error_code(std::errc::function_not_supported);  // no descriptor passing on Windows
    }
    auto* record = new (std::nothrow) Operation;
    if (record == nullptr) return std::make_error_code(std::errc::not_enough_memory);
    record->owner = this;
    record->watch = &watch;
    record->slot = slot;
    record->kind = op.kind;
    record->socket = watch.fd;
    {
      std::lock_guard<std::mutex> lock(operationsMutex_);
      watch.operations[slot == kWritable ? 1 : 0] = record;
    }
    inFlight_.fetch_add(1, std::memory_order_relaxed);
    // Not a status Windows writes: tells below whether it wrote one.
    record->overlapped.Internal = kNotWritten;
    const DWORD error = start(*record, op);
    if (error != 0 && error != WSA_IO_PENDING && !completionQueued(*record)) {
      // Nothing was queued for it: complete it ourselves, once.
      record->failure = error;
      if (!PostQueuedCompletionStatus(port_, 0, kFailedKey, &record->overlapped)) {
        forget(*record);
        if (record->accepted != INVALID_SOCKET) closesocket(record->accepted);
        delete record;
        inFlight_.fetch_sub(1, std::memory_order_release);
        return makeAprError(APR_FROM_OS_ERROR(error));
      }
    }
    release(*record);
    return {};
  }

  void cancel(Watch& watch, unsigned slot) noexcept override {
    std::lock_guard<std::mutex> lock(operationsMutex_);
    auto* record = static_cast<Operation*>(watch.operations[slot == kWritable ? 1 : 0]);
    // Not found: finished already, or the call failed at once (its
    // completion is queued).
    if (record != nullptr) CancelIoEx(reinterpret_cast<HANDLE>(record->socket), &record->overlapped);
  }

  void flush() noexcept override {}  // operations start in submit()

  bool completesFileOperations() const noexcept override { return true; }

  std::error_code submitFile(Event& event, CompletionSink& sink) noexcept override {
    const bool read = event.kind() == Event::Kind::FileRead;
    FileState* file = FileAccess::state(read ? static_cast<FileReadEvent&>(event).file()
                                             : static_cast<FileWriteEvent&>(event).file());
    if (file == nullptr || !enterFile(*file)) return Errc::not_open;
    const HANDLE handle = overlappedHandle(*file, hub_->port());
    if (handle == nullptr) {
      leaveFile(*file);
      return std::make_error_code(std::errc::function_not_supported);  // the channel runs it on a worker
    }
    auto* record = new (std::nothrow) FileOperation;
    if (record == nullptr) {
      leaveFile(*file);
      return std::make_error_code(std::errc::not_enough_memory);
    }
    record->owner = this;
    record->isFile = true;
    record->event = &event;
    record->sink = &sink;
    record->file = file;
    record->handle = handle;
    const std::uint64_t offset = read ? static_cast<FileReadEvent&>(event).offset()
                                      : static_cast<FileWriteEvent&>(event).offset();
    record->overlapped.Offset = static_cast<DWORD>(offset & 0xffffffffu);
    record->overlapped.OffsetHigh = static_cast<DWORD>(offset >> 32);
    link(*record);
    inFlight_.fetch_add(1, std::memory_order_relaxed);
    record->overlapped.Internal = kNotWritten;
    // No file has a byte at 2^63 or beyond, an offset Windows takes for
    // negative: a read there, or a write reaching there, is refused as on
    // POSIX (EINVAL) before Windows sees it (Wine never completed such a
    // write).  A read that only reaches past it is cut below (the end).
    const std::uint64_t lastOffset = static_cast<std::uint64_t>(INT64_MAX);
    const bool refused =
        offset > lastOffset || (!read && static_cast<FileWriteEvent&>(event).size() > lastOffset - offset);
    // One call moves at most kMaxBytes (the result is an int): a larger
    // event completes short, as a read(2) would.
    BOOL ok = FALSE;
    if (refused) {
      SetLastError(ERROR_INVALID_PARAMETER);
    } else if (read) {
      auto& r = static_cast<FileReadEvent&>(event);
      ok = ReadFile(handle, r.buffer(), static_cast<DWORD>(std::min(readableBelowOffTEnd(offset, r.size()), kMaxBytes)),
                    nullptr, &record->overlapped);
    } else {
      auto& w = static_cast<FileWriteEvent&>(event);
      ok = WriteFile(handle, w.buffer(), static_cast<DWORD>(std::min(w.size(), kMaxBytes)), nullptr,
                     &record->overlapped);
    }
    const DWORD error = ok ? 0 : GetLastError();
    if (error != 0 && error != ERROR_IO_PENDING && !completionQueued(*record)) {
      // Refused at once (a read at the end of the file may be): Windows
      // holds nothing of it; complete it ourselves, once.
      unlink(*record);
      leaveFile(*file);
      record->failure = error;
      if (!PostQueuedCompletionStatus(port_, 0, kFailedKey, &record->overlapped)) {
        const DWORD postError = GetLastError();
        delete record;
        inFlight_.fetch_sub(1, std::memory_order_release);
        return makeAprError(APR_FROM_OS_ERROR(postError));
      }
    }
    release(*record);
    return {};
  }

  // Cancels what Windows still has; the workers reap the completions
  // (busy() counts them) before they leave.
  void drainFileOperations() noexcept override {
    std::lock_guard<std::mutex> lock(filesMutex_);
    for (FileOperation* record = files_; record != nullptr; record = record->next) {
      CancelIoEx(record->handle, &record->overlapped);
    }
  }

  // The hub has the completion: Windows is done with the buffer and the
  // handle, which close() may now close.
  void fileIoDone(FileOperation& record) noexcept {
    unlink(record);
    leaveFile(*record.file);
  }

  bool busy() const noexcept override { return inFlight_.load(std::memory_order_acquire) > 0; }
  void closeDescriptor(int fd) noexcept override { closesocket(static_cast<SOCKET>(fd)); }

  std::error_code waitCompletions(std::vector<Completion>& done, Deadline deadline) noexcept override {
    done.clear();
    OVERLAPPED_ENTRY entries[kReapBatch];
    ULONG count = 0;
    const int ms = timeoutMilliseconds(deadline);
    if (!GetQueuedCompletionStatusEx(port_, entries, kReapBatch, &count, ms < 0 ? INFINITE : static_cast<DWORD>(ms),
                                     FALSE)) {
      const DWORD error = GetLastError();
      if (error == WAIT_TIMEOUT) return {};
      return makeAprError(APR_FROM_OS_ERROR(error));
    }
    long operations = 0;
    FileOperation* filesDone[kReapBatch];
    ULONG fileCount = 0;
    for (ULONG i = 0; i < count; ++i) {
      if (entries[i].lpCompletionKey == kWakeKey) {
        wakeQueued_.store(false, std::memory_order_release);
        continue;
      }
      auto* base = reinterpret_cast<Record*>(entries[i].lpOverlapped);
      if (base == nullptr) continue;
      ++operations;
      if (base->isFile) {
        auto* file = static_cast<FileOperation*>(base);
        finishFile(*file, entries[i].lpCompletionKey);
        filesDone[fileCount++] = file;
        continue;
      }
      auto* record = static_cast<Operation*>(base);
      done.push_back(Completion{record->watch, record->slot, finish(*record, entries[i].lpCompletionKey)});
      forget(*record);
      release(*record);
    }
    // File events go back to the channel here (socket events go back
    // through `done`); counted out of busy() only after, so no worker
    // leaves at shutdown before they are queued.
    for (ULONG i = 0; i < fileCount; ++i) {
      FileOperation& file = *filesDone[i];
      file.sink->operationCompleted(*file.event, fileResult(file));
      release(file);
    }
    inFlight_.fetch_sub(operations, std::memory_order_release);
    return {};
  }

 private:
  // Starts the operation: 0 or WSA_IO_PENDING when its completion will
  // come through the hub, else the Winsock error of the call.
  static DWORD start(Operation& record, const SocketOperation& op) noexcept {
    const SOCKET s = record.socket;
    int rc = SOCKET_ERROR;
    switch (op.kind) {
      case SocketOperation::Kind::Receive:
        record.buffers[0] = WSABUF{static_cast<ULONG>(std::min(op.size, kMaxBytes)), static_cast<CHAR*>(op.buffer)};
        rc = WSARecv(s, record.buffers, 1, nullptr, &record.flags, &record.overlapped, nullptr);
        break;
      case SocketOperation::Kind::Send:
        record.buffers[0] = WSABUF{static_cast<ULONG>(std::min(op.size, kMaxSendBytes)), static_cast<CHAR*>(op.buffer)};
        rc = WSASend(s, record.buffers, 1, nullptr, 0, &record.overlapped, nullptr);
        break;
      case SocketOperation::Kind::SendPieces: {
        // WSABUF is { ULONG len; CHAR* buf; }, not a ConstBuffer: copied.
        DWORD count = 0;
        std::size_t total = 0;
        for (std::size_t i = 0; i < op.pieceCount && count < kMaxPieces && total < kMaxSendBytes; ++i) {
          const std::size_t size = std::min(op.pieces[i].size, kMaxSendBytes - total);
          if (size == 0) continue;
          record.buffers[count++] = WSABUF{static_cast<ULONG>(size), static_cast<CHAR*>(const_cast<void*>(op.pieces[i].data))};
          total += size;
        }
        rc = WSASend(s, record.buffers, count, nullptr, 0, &record.overlapped, nullptr);
        break;
      }
      case SocketOperation::Kind::ReceiveMessage:
        record.scratch = op.scratch;
        record.addressLength = static_cast<INT>(sizeof op.scratch->address);
        record.buffers[0] = WSABUF{static_cast<ULONG>(std::min(op.size, kMaxBytes)), static_cast<CHAR*>(op.buffer)};
        rc = WSARecvFrom(s, record.buffers, 1, nullptr, &record.flags, reinterpret_cast<sockaddr*>(op.scratch->address),
                         &record.addressLength, &record.overlapped, nullptr);
        break;
      case SocketOperation::Kind::SendMessage: {
        record.buffers[0] = WSABUF{static_cast<ULONG>(std::min(op.size, kMaxBytes)), static_cast<CHAR*>(op.buffer)};
        const bool addressed = op.scratch != nullptr && op.scratch->addressLength > 0;
        rc = WSASendTo(s, record.buffers, 1, nullptr, 0,
                       addressed ? reinterpret_cast<const sockaddr*>(op.scratch->address) : nullptr,
                       addressed ? static_cast<int>(op.scratch->addressLength) : 0, &record.overlapped, nullptr);
        break;
      }
      case SocketOperation::Kind::Accept: return startAccept(record);
      case SocketOperation::Kind::Connect: return startConnect(record, op);
    }
    return rc == 0 ? 0 : static_cast<DWORD>(WSAGetLastError());
  }

  template <class Function>
  static Function extension(SOCKET s, GUID guid) noexcept {
    Function function = nullptr;
    DWORD bytes = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, &function, sizeof function, &bytes,
                 nullptr, nullptr) != 0)
      return nullptr;
    return function;
  }

  static DWORD startAccept(Operation& record) noexcept {
    sockaddr_storage local{};
    int length = sizeof local;
    if (getsockname(record.socket, reinterpret_cast<sockaddr*>(&local), &length) != 0) {
      return static_cast<DWORD>(WSAGetLastError());
    }
    const auto acceptEx = extension<LPFN_ACCEPTEX>(record.socket, WSAID_ACCEPTEX);
    if (acceptEx == nullptr) return static_cast<DWORD>(WSAGetLastError());
    record.accepted = WSASocketW(local.ss_family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0,
                                 WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (record.accepted == INVALID_SOCKET) return static_cast<DWORD>(WSAGetLastError());
    DWORD bytes = 0;
    if (acceptEx(record.socket, record.accepted, record.acceptAddresses, 0, kAcceptAddressRoom, kAcceptAddressRoom,
                 &bytes, &record.overlapped)) {
      return 0;
    }
    return static_cast<DWORD>(WSAGetLastError());
  }

  static DWORD startConnect(Operation& record, const SocketOperation& op) noexcept {
    const auto* target = static_cast<const sockaddr*>(op.address);
    // ConnectEx wants a bound socket: the wildcard address of its family
    // (a socket bound already refuses with WSAEINVAL, and keeps its address).
    sockaddr_storage wildcard{};
    wildcard.ss_family = target->sa_family;
    const int wildcardLength = target->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    if (bind(record.socket, reinterpret_cast<const sockaddr*>(&wildcard), wildcardLength) != 0 &&
        WSAGetLastError() != WSAEINVAL) {
      return static_cast<DWORD>(WSAGetLastError());
    }
    const auto connectEx = extension<LPFN_CONNECTEX>(record.socket, WSAID_CONNECTEX);
    if (connectEx == nullptr) return static_cast<DWORD>(WSAGetLastError());
    if (connectEx(record.socket, target, static_cast<int>(op.addressLength), nullptr, 0, nullptr, &record.overlapped)) {
      return 0;
    }
    return static_cast<DWORD>(WSAGetLastError());
  }

  // The result channel_completions.cpp expects for a completed record.
  static int finish(Operation& record, ULONG_PTR key) noexcept {
    DWORD bytes = 0;
    DWORD error = 0;
    if (key == kFailedKey) {
      error = record.failure;
      // A datagram too long for the buffer filled it.
      if (error == WSAEMSGSIZE) bytes = record.buffers[0].len;
    } else if (!GetOverlappedResult(reinterpret_cast<HANDLE>(record.socket), &record.overlapped, &bytes, FALSE)) {
      // Reads the status the completion left in the OVERLAPPED; the
      // socket itself is not used (and may be closed by now).
      error = GetLastError();
    }
    if (record.kind == SocketOperation::Kind::ReceiveMessage && (error == 0 || error == ERROR_MORE_DATA ||
                                                                 error == WSAEMSGSIZE)) {
      // A datagram longer than the buffer: its first bytes, truncated.
      record.scratch->addressLength = static_cast<unsigned>(std::max(record.addressLength, 0));
      record.scratch->truncated = error != 0;
      error = 0;
    }
    if (error == 0) {
      switch (record.kind) {
        case SocketOperation::Kind::Accept: {
          const SOCKET listener = record.socket;
          setsockopt(record.accepted, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, reinterpret_cast<const char*>(&listener),
                     sizeof listener);
          // Socket handles fit in 32 bits (Windows keeps them so for 32-bit
          // processes), and are positive.
          return static_cast<int>(std::exchange(record.accepted, INVALID_SOCKET));
        }
        case SocketOperation::Kind::Connect:
          setsockopt(record.socket, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, nullptr, 0);
          return 0;
        default: return static_cast<int>(bytes);
      }
    }
    if (record.accepted != INVALID_SOCKET) {
      closesocket(record.accepted);
      record.accepted = INVALID_SOCKET;
    }
    const DWORD code = winsockError(error);
    if (code == ERROR_OPERATION_ABORTED || code == WSA_OPERATION_ABORTED) return -ECANCELED;
    if (record.kind == SocketOperation::Kind::Accept && (code == WSAECONNRESET || code == WSAECONNABORTED)) {
      return -ECONNABORTED;  // reset while queued: the channel accepts the next one
    }
    const bool datagram = record.kind == SocketOperation::Kind::ReceiveMessage ||
                          record.kind == SocketOperation::Kind::SendMessage;
    if (datagram && code == WSAECONNRESET) {
      // Windows' word for an ICMP port unreachable on a datagram socket;
      // connection_refused, as apr_pollset and the POSIX hosts report it.
      return -static_cast<int>(APR_FROM_OS_ERROR(WSAECONNREFUSED));
    }
    return -static_cast<int>(APR_FROM_OS_ERROR(code));
  }

  // The Winsock spelling of the Win32 error a completed socket operation
  // leaves (the status of the OVERLAPPED, as GetOverlappedResult words it),
  // which is what APR and apr_pollset report for the same failures.
  static DWORD winsockError(DWORD error) noexcept {
    switch (error) {
      case ERROR_MORE_DATA: return WSAEMSGSIZE;  // a datagram too long (a receive's is handled before)
      case ERROR_NETNAME_DELETED: return WSAECONNRESET;
      case ERROR_PORT_UNREACHABLE: return WSAECONNRESET;  // a datagram's ICMP port unreachable (see finish())
      case ERROR_CONNECTION_REFUSED: return WSAECONNREFUSED;
      case ERROR_CONNECTION_ABORTED: return WSAECONNABORTED;
      case ERROR_REQUEST_ABORTED: return WSAECONNABORTED;
      case ERROR_GRACEFUL_DISCONNECT: return WSAESHUTDOWN;
      case ERROR_SEM_TIMEOUT: return WSAETIMEDOUT;
      case ERROR_NETWORK_UNREACHABLE: return WSAENETUNREACH;
      case ERROR_HOST_UNREACHABLE: return WSAEHOSTUNREACH;
      case ERROR_PROTOCOL_UNREACHABLE: return WSAENETUNREACH;
      case ERROR_INVALID_HANDLE: return WSAENOTSOCK;
      case ERROR_NOT_ENOUGH_MEMORY: return WSAENOBUFS;
      case ERROR_INSUFFICIENT_BUFFER: return WSAEFAULT;
      case ERROR_INVALID_NETNAME: return WSAEADDRNOTAVAIL;
      case ERROR_ADDRESS_ALREADY_ASSOCIATED: return WSAEADDRINUSE;
      default: return error;
    }
  }

  // A call that fails at once queues no completion, unless its status is
  // only a warning (STATUS_BUFFER_OVERFLOW: WSAEMSGSIZE, a datagram longer
  // than the buffer, or under Wine one too long to send), which Windows
  // writes into the OVERLAPPED and queues like a success.  Errors leave
  // the OVERLAPPED alone (or STATUS_PENDING in it).
  static bool completionQueued(const Record& record) noexcept {
    const ULONG_PTR status = record.overlapped.Internal;
    return status != kNotWritten && status != kStatusPending && (status & 0xC0000000u) != 0xC0000000u;
  }

  // Sets the event's byte count; the error is kept in `failure` for fileResult().
  static void finishFile(FileOperation& record, ULONG_PTR key) noexcept {
    DWORD bytes = 0;
    DWORD error = 0;
    if (key == kFailedKey) {
      error = record.failure;
    } else if (!GetOverlappedResult(record.handle, &record.overlapped, &bytes, FALSE)) {
      error = GetLastError();  // read from the OVERLAPPED; the handle may be closed by now
    }
    if (error == ERROR_HANDLE_EOF) error = 0, bytes = 0;  // at or beyond the end: 0 bytes, as elsewhere
    record.failure = error;
    if (record.event->kind() == Event::Kind::FileRead) {
      EventAccess::transferred(static_cast<FileReadEvent&>(*record.event)) = error == 0 ? bytes : 0;
    } else {
      EventAccess::transferred(static_cast<FileWriteEvent&>(*record.event)) = error == 0 ? bytes : 0;
    }
  }

  static std::error_code fileResult(const FileOperation& record) noexcept {
    if (record.failure == 0) return {};
    if (record.failure == ERROR_OPERATION_ABORTED) return std::make_error_code(std::errc::operation_canceled);
    return makeAprError(APR_FROM_OS_ERROR(record.failure));
  }

  static void release(Record& record) noexcept {
    if (record.holders.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (record.isFile) {
      delete static_cast<FileOperation*>(&record);
    } else {
      delete static_cast<Operation*>(&record);
    }
  }

  void link(FileOperation& record) noexcept {
    std::lock_guard<std::mutex> lock(filesMutex_);
    record.next = files_;
    if (files_ != nullptr) files_->prev = &record;
    files_ = &record;
  }

  void unlink(FileOperation& record) noexcept {
    std::lock_guard<std::mutex> lock(filesMutex_);
    if (record.prev != nullptr) record.prev->next = record.next; else files_ = record.next;
    if (record.next != nullptr) record.next->prev = record.prev;
    record.prev = record.next = nullptr;
  }

  void forget(Operation& record) noexcept {
    std::lock_guard<std::mutex> lock(operationsMutex_);
    void*& slot = record.watch->operations[record.slot == kWritable ? 1 : 0];
    if (slot == &record) slot = nullptr;
  }

  Hub* hub_ = nullptr;
  HANDLE port_ = nullptr;  // this channel's: completions forwarded by the hub, wake-ups
  std::atomic<long> inFlight_{0};  // operations submitted, completion not reaped
  std::atomic<bool> wakeQueued_{false};
  std::mutex operationsMutex_;  // every watch's operations[]
  std::mutex filesMutex_;
  FileOperation* files_ = nullptr;  // file operations whose completion the hub has not seen
};

void Hub::run() noexcept {
  OVERLAPPED_ENTRY entries[kReapBatch];
  for (;;) {
    ULONG count = 0;
    if (!GetQueuedCompletionStatusEx(port_, entries, kReapBatch, &count, INFINITE, FALSE)) {
      Sleep(1);  // cannot fail with a valid port; never spin
      continue;
    }
    for (ULONG i = 0; i < count; ++i) {
      auto* record = reinterpret_cast<Record*>(entries[i].lpOverlapped);
      if (record == nullptr) continue;
      if (record->isFile) record->owner->fileIoDone(*static_cast<FileOperation*>(record));
      // The status stays in the record's OVERLAPPED for the channel to read.
      while (!PostQueuedCompletionStatus(record->owner->port(), entries[i].dwNumberOfBytesTransferred, kForwardedKey,
                                         &record->overlapped)) {
        Sleep(1);  // out of memory for the packet: the operation must not be lost
      }
    }
  }
}

}  // namespace

std::unique_ptr<Poller> createIocpPoller(std::error_code& ec) {
  auto poller = std::make_unique<IocpPoller>();
  if ((ec = poller->open())) return nullptr;
  return poller;
}

}  // namespace evchan::detail
