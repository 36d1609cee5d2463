// SPDX-License-Identifier: Apache-2.0
// File: opened through APR, read and written at offsets by the platform's
// positioned IO (src/posix/file_io.cpp, src/win32/file_io.cpp).
#include <evchan/file.h>

#include <optional>

#include <evchan/blocking.h>
#include <evchan/error.h>
#include <evchan/file_events.h>
#include <evchan/task.h>
#include <evchan/system_error.h>

#include "apr/file_state.h"
#include "net/close_wait.h"
#include "task/await.h"

namespace evchan {
namespace {

using detail::FileState;

// What a posted FileReadEvent or FileWriteEvent is refused for, checked
// the same way: an empty transfer too.
std::error_code checkTransfer(const FileState* state, std::uint64_t offset, const void* buffer, std::size_t size) {
  if (state == nullptr) return Errc::not_open;
  if (buffer == nullptr && size != 0) return Errc::null_buffer;
  if (!detail::fileOffsetFits(offset)) return std::make_error_code(std::errc::invalid_argument);
  return {};
}

// One call on a File, counted against a close() on another thread: get()
// is null when the file is closed or closing (FileState says how the two
// pair up).
class FileCall {
 public:
  explicit FileCall(FileState* state) noexcept
      : state_(state != nullptr && detail::enterFile(*state) ? state : nullptr) {}
  ~FileCall() {
    if (state_ != nullptr) detail::leaveFile(*state_);
  }
  FileCall(const FileCall&) = delete;
  FileCall& operator=(const FileCall&) = delete;

  FileState* get() const noexcept { return state_; }

 private:
  FileState* state_;
};

// A close() began: the call stops before its next step.
bool closing(const FileState& file) noexcept { return file.closed.load(std::memory_order_acquire); }

const std::string kNoPath;

// The types File keeps (file.h): what read and write wait only for a disk.
bool keptType(apr_filetype_e type) noexcept { return type == APR_REG || type == APR_BLK; }

// The type of what `path` names now; none when it cannot be read.
std::optional<apr_filetype_e> typeAt(const std::string& path, apr_pool_t* pool) noexcept {
  apr_finfo_t info;
  const apr_status_t found = apr_stat(&info, path.c_str(), APR_FINFO_TYPE, pool);
  if ((found != APR_SUCCESS && found != APR_INCOMPLETE) || (info.valid & APR_FINFO_TYPE) == 0) return std::nullopt;
  return info.filetype;
}

// Why an open failed, in file.h's terms when the path names what File
// refuses: Windows refuses to open a directory with "access denied", and
// an open for writing only of a named pipe put at the path after the
// check fails (ENXIO: no reader) instead of waiting for one.
std::error_code openFailure(const std::string& path, apr_status_t status, apr_pool_t* pool) {
  const std::optional<apr_filetype_e> type = typeAt(path, pool);
  if (type == APR_DIR) return std::make_error_code(std::errc::is_a_directory);
  if (type && !keptType(*type)) return std::make_error_code(std::errc::invalid_argument);
  return makeAprError(status);
}

// Reads until `size` bytes or the end of the file.
std::size_t readLoop(const FileState& file, std::uint64_t offset, char* buffer, std::size_t size,
                     std::error_code& ec) noexcept {
  std::size_t done = 0;
  while (done < size) {
    if (done != 0 && closing(file)) {
      ec = Errc::not_open;
      break;
    }
    std::size_t n = 0;
    if ((ec = detail::readOnce(file, offset + done, buffer + done, size - done, n)) || n == 0) break;
    done += n;
  }
  return done;
}

std::size_t writeLoop(const FileState& file, std::uint64_t offset, const char* buffer, std::size_t size,
                      std::error_code& ec) noexcept {
  std::size_t done = 0;
  while (done < size) {
    if (done != 0 && closing(file)) {
      ec = Errc::not_open;
      break;
    }
    std::size_t n = 0;
    if ((ec = detail::writeOnce(file, offset + done, buffer + done, size - done, n))) break;
    done += n;
  }
  return done;
}

}  // namespace

File::File() noexcept = default;
File::File(std::unique_ptr<FileState> state) noexcept : state_(std::move(state)) {}
// Closed the way close() does: a backend's operation still in the kernel
// keeps the handle open until it is done.
File::~File() { close(); }
File::File(File&& other) noexcept = default;
File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
  }
  return *this;
}

File File::open(const std::string& path, unsigned mode, std::error_code& ec) noexcept {
  const unsigned known = kFileRead | kFileWrite | kFileCreate | kFileTruncate | kFileExclusive;
  // A NUL would end the path early: the file opened would be another.
  if ((mode & (kFileRead | kFileWrite)) == 0 || (mode & ~known) != 0 || path.empty() ||
      path.find('\0') != std::string::npos) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return File();
  }
  auto state = std::make_unique<FileState>();
  state->pool = detail::createPool(ec);
  if (ec) return File();
  // What is refused is refused before it is opened: opening a device may
  // have effects of its own.  The path may change before the open, so the
  // open never waits (a pipe's waits for its other end, for ever if none
  // comes) and the type is checked again on the open file.
  const std::optional<apr_filetype_e> named = typeAt(path, state->pool.get());
  if (named && *named != APR_DIR && !keptType(*named)) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return File();
  }
  apr_int32_t flags = APR_FOPEN_BINARY;
  if (mode & kFileRead) flags |= APR_FOPEN_READ;
  if (mode & kFileWrite) flags |= APR_FOPEN_WRITE;
  if (mode & kFileTruncate) flags |= APR_FOPEN_TRUNCATE;
  const apr_int32_t creation =
      (mode & kFileCreate ? APR_FOPEN_CREATE : 0) | (mode & kFileExclusive ? APR_FOPEN_EXCL : 0);
  apr_status_t opened = apr_file_open(&state->file, path.c_str(), flags | creation | detail::openFlagsThatNeverWait(),
                                      APR_FPROT_OS_DEFAULT, state->pool.get());
  // A file another process holds a lease on (Linux) refuses an open that
  // never waits, where open(2) would wait for the lease break (up to the
  // kernel's lease-break-time, 45 s by default).  This open waits then
  // too, for what the path names if it is a regular file (never for a
  // pipe), as a blocking call: a task's worker is replaced meanwhile.  A
  // file that an exclusive open created has no lease.
  if (APR_STATUS_IS_EAGAIN(opened) && (mode & kFileExclusive) == 0) {
    const apr_status_t refused = opened;
    apr_pool_t* pool = state->pool.get();
    opened = blocking([&] { return detail::openAfterLeaseBreak(&state->file, path, flags, refused, pool); });
  }
  if (opened != APR_SUCCESS) {
    ec = openFailure(path, opened, state->pool.get());
    return File();
  }
  if (apr_status_t status = apr_os_file_get(&state->native, state->file); status != APR_SUCCESS) {
    ec = makeAprError(status);
    return File();
  }
  // A file whose type cannot be read is refused too: on Windows, where a
  // device name (NUL, COM1, CON) has no type before it is opened, reading
  // an open device's type fails, and a read of it may never return.
  apr_finfo_t info{};
  const apr_status_t typed = apr_file_info_get(&info, APR_FINFO_TYPE, state->file);
  const bool typeKnown = (typed == APR_SUCCESS || typed == APR_INCOMPLETE) && (info.valid & APR_FINFO_TYPE) != 0;
  if (!typeKnown || !keptType(info.filetype)) {
    const bool directory = typeKnown && info.filetype == APR_DIR;
    ec = std::make_error_code(directory ? std::errc::is_a_directory : std::errc::invalid_argument);
    return File();
  }
  if ((ec = detail::restoreBlockingIo(*state))) return File();
  state->path = path;
  ec.clear();
  return File(std::move(state));
}

File File::open(const std::string& path, unsigned mode) {
  std::error_code ec;
  File file = open(path, mode, ec);
  throwIfError(ec, "open", path);
  return file;
}

std::size_t File::readAt(std::uint64_t offset, void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const FileCall call(state_.get());
  if ((ec = checkTransfer(call.get(), offset, buffer, size)) || size == 0) return 0;
  auto* bytes = static_cast<char*>(buffer);
  if (inTask()) {
    // The channel completes it (aio), or a worker lent by the pool does.
    FileReadEvent read(*this, offset, buffer, size);
    std::size_t done = 0;
    while (done < size && detail::awaitFileInTask(read, ec)) {
      if (ec || read.bytesTransferred() == 0) return done;
      done += read.bytesTransferred();
      read.set(offset + done, bytes + done, size - done);
    }
    if (done == size) return done;
    return done + blocking([&] { return readLoop(*call.get(), offset + done, bytes + done, size - done, ec); });
  }
  return readLoop(*call.get(), offset, bytes, size, ec);
}

std::size_t File::readAt(std::uint64_t offset, void* buffer, std::size_t size) {
  std::error_code ec;
  const std::size_t n = readAt(offset, buffer, size, ec);
  throwIfError(ec, "read", path());
  return n;
}

std::size_t File::writeAt(std::uint64_t offset, const void* buffer, std::size_t size, std::error_code& ec) noexcept {
  const FileCall call(state_.get());
  if ((ec = checkTransfer(call.get(), offset, buffer, size)) || size == 0) return 0;
  const auto* bytes = static_cast<const char*>(buffer);
  if (inTask()) {
    FileWriteEvent write(*this, offset, buffer, size);
    std::size_t done = 0;
    while (done < size && detail::awaitFileInTask(write, ec)) {
      if (ec) return done;
      done += write.bytesTransferred();
      write.set(offset + done, bytes + done, size - done);
    }
    if (done == size) return done;
    return done + blocking([&] { return writeLoop(*call.get(), offset + done, bytes + done, size - done, ec); });
  }
  return writeLoop(*call.get(), offset, bytes, size, ec);
}

std::size_t File::writeAt(std::uint64_t offset, const void* buffer, std::size_t size) {
  std::error_code ec;
  const std::size_t n = writeAt(offset, buffer, size, ec);
  throwIfError(ec, "write", path());
  return n;
}

std::uint64_t File::size(std::error_code& ec) const noexcept {
  const FileCall call(state_.get());
  if (call.get() == nullptr) {
    ec = Errc::not_open;
    return 0;
  }
  std::uint64_t size = 0;
  ec = detail::fileSize(*call.get(), size);
  return size;
}

std::uint64_t File::size() const {
  std::error_code ec;
  const std::uint64_t n = size(ec);
  throwIfError(ec, "size", path());
  return n;
}

void File::sync(std::error_code& ec) noexcept {
  const FileCall call(state_.get());
  if (call.get() == nullptr) {
    ec = Errc::not_open;
    return;
  }
  const apr_status_t status = blocking([&] { return apr_file_datasync(call.get()->file); });
  ec = status == APR_SUCCESS ? std::error_code() : makeAprError(status);
}

void File::sync() {
  std::error_code ec;
  sync(ec);
  throwIfError(ec, "sync", path());
}

void File::close() noexcept {
  FileState* state = state_.get();
  if (state == nullptr) return;
  if (state->closed.exchange(true, std::memory_order_seq_cst)) {
    // Another close() came first: done once it has closed the handle.
    detail::waitUntil([state] { return state->handleClosed.load(std::memory_order_acquire); });
    return;
  }
  // seq_cst, as FileCall's load of `closed`: one of the two sees the other.
  detail::waitUntil([state] { return state->calls.load(std::memory_order_seq_cst) == 0; });
  FileState::closeBackendHandle(*state);
  state->pool.reset();  // closes the handle
  state->handleClosed.store(true, std::memory_order_release);
}

bool File::isOpen() const noexcept { return detail::FileAccess::state(*this) != nullptr; }

const std::string& File::path() const noexcept { return isOpen() ? state_->path : kNoPath; }

}  // namespace evchan
