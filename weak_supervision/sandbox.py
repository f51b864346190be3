"""Run many small calls in a forked child under a per-call time limit and a memory limit.

A labeling function is code or a pattern that a project manager chose; it runs on every item,
in a web request ("try on a sample") and in a worker (apply). Neither process may hang or
balloon because of it. `run_limited` forks a child (which inherits the inputs: nothing is
serialised on the way in), caps the child's address space (RLIMIT_AS: what it has plus
``memory_bytes``), and calls ``call(i)`` for each index in turn. The child writes each result
into shared memory, so a batch of thousands of calls costs one fork, not one process each.

The parent watches the call in progress: one that runs past ``call_seconds`` gets the child
killed (SIGKILL interrupts anything, C code and ``while True: pass`` included), is reported
as a timeout, and a new child goes on with the next index. A child that dies (a segfault, the
kernel's OOM killer) costs the call it was on, reported as crashed. The child dies with its
parent (PR_SET_PDEATHSIG), so a worker killed at its hard time limit leaves no orphan.

Forking is safe here although the parent may have threads: the child only runs ``call`` and
leaves with ``os._exit`` (no atexit handlers, no database connection touched, no buffers
flushed twice). No Django import.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import json
import mmap
import os
import resource
import select
import signal
import struct
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

# Header of the shared block: index of the call in progress, and when it started
# (time.monotonic() is one clock for every process on the machine).
_HEADER = struct.Struct("<qd")
_VALUE = struct.Struct("<i")
_POLL_SECONDS = 0.02
_PR_SET_PDEATHSIG = 1
try:  # loaded here, not in the child: dlopen after fork could wait on a lock held by a thread
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (AttributeError, OSError):
    _PRCTL = None
MAX_MESSAGES_PER_CHILD = 1000


class Status(enum.IntEnum):
    PENDING = 0
    OK = 1
    ERROR = 2  # the call raised
    TIMEOUT = 3  # past call_seconds (killed), or the call raised TimeoutError itself
    MEMORY = 4  # MemoryError: over the memory limit
    CRASHED = 5  # the child died during the call
    SKIPPED = 6


@dataclass(frozen=True)
class Limits:
    """``call_seconds``: wall time of one call. ``memory_bytes``: address space the child may
    add to what it inherited (0: no limit)."""

    call_seconds: float
    memory_bytes: int = 0


class Result(NamedTuple):
    index: int
    status: Status
    value: int = 0
    error_type: str = ""
    message: str = ""


_STATUSES = tuple(Status)


def default_error_text(exc: BaseException) -> str:
    """Exception type and the first line of its message, short: never a traceback."""
    lines = str(exc).strip().splitlines()
    reason = lines[0][:200] if lines else ""
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def _address_space() -> int:
    """Virtual memory the process has mapped now, in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _confine_child(limits: Limits, parent: int) -> None:
    for name in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM"):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    if limits.memory_bytes:
        mapped = _address_space()
        if mapped:
            cap = mapped + limits.memory_bytes
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _child(
    *,
    call: Callable[[int], int],
    start: int,
    count: int,
    skip: Callable[[int], bool],
    error_key: Callable[[int], Hashable],
    error_text: Callable[[BaseException], str],
    shared: mmap.mmap,
    write_fd: int,
    limits: Limits,
    parent: int,
) -> None:
    _confine_child(limits, parent)
    status_at = _HEADER.size
    value_at = status_at + count
    sent: set[Hashable] = set()
    for i in range(start, count):
        if skip(i):
            shared[status_at + i] = Status.SKIPPED
            continue
        _HEADER.pack_into(shared, 0, i, time.monotonic())
        value, message, error_type = 0, "", ""
        try:
            value = int(call(i))
            status = Status.OK
        except TimeoutError:
            status = Status.TIMEOUT
        except MemoryError:
            status = Status.MEMORY
        except BaseException as exc:  # a user's function may raise anything, SystemExit too
            status = Status.ERROR
            key = error_key(i)
            if key not in sent and len(sent) < MAX_MESSAGES_PER_CHILD:
                sent.add(key)
                error_type = type(exc).__name__
                try:
                    message = error_text(exc)
                except Exception:
                    message = error_type
        if message:
            # Before the status: the parent reads statuses first, then drains the pipe.
            blob = json.dumps([i, error_type, message]).encode()
            os.write(write_fd, struct.pack("<I", len(blob)) + blob)
        _VALUE.pack_into(shared, value_at + 4 * i, value)
        shared[status_at + i] = status


class _Messages:
    """Length-prefixed JSON messages read from the child's pipe without blocking (JSON, not
    pickle: what the child writes is never code to the parent)."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer, self.closed = fd, b"", False
        self.by_index: dict[int, tuple[str, str]] = {}

    def drain(self) -> None:
        while not self.closed:
            ready, _, _ = select.select([self.fd], [], [], 0)
            if not ready:
                break
            chunk = os.read(self.fd, 65536)
            if not chunk:
                self.closed = True
                break
            self.buffer += chunk
        while len(self.buffer) >= 4:
            (size,) = struct.unpack_from("<I", self.buffer)
            if len(self.buffer) < 4 + size:
                break
            blob, self.buffer = self.buffer[4 : 4 + size], self.buffer[4 + size :]
            try:
                index, error_type, message = json.loads(blob)
                self.by_index[int(index)] = (str(error_type), str(message))
            except (ValueError, TypeError):
                continue  # not ours: something else wrote to the pipe


def _reap(pid: int, *, kill: bool) -> int | None:
    """Kill (if asked) and wait for the child; its wait status, None if already reaped."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return None


class LimitedRun:
    """Iterate over one Result per index, in order (skipped indices too). ``call(i)`` runs in
    a child process and returns a small int. The message of an ERROR result is sent only for
    the first error of each ``error_key`` group (per child).

    ``skip`` is read by the child: a caller whose answer changes (a function stopped for
    timeouts) calls `restart` while iterating, and the rest runs in a fresh child."""

    def __init__(
        self,
        call: Callable[[int], int],
        count: int,
        *,
        limits: Limits,
        skip: Callable[[int], bool] = lambda i: False,
        error_key: Callable[[int], Hashable] = lambda i: i,
        error_text: Callable[[BaseException], str] = default_error_text,
    ) -> None:
        self.call, self.count, self.limits = call, count, limits
        self.skip, self.error_key, self.error_text = skip, error_key, error_text
        self.position = 0
        self.forks = 0
        self._restart = False

    def restart(self) -> None:
        self._restart = True

    def __iter__(self) -> Iterator[Result]:
        while self.position < self.count:
            yield from self._one_child()

    def _spawn(self, shared: mmap.mmap) -> tuple[int, int]:
        read_fd, write_fd = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; coverage cannot follow os._exit
            code = 0
            try:
                os.close(read_fd)
                _child(
                    call=self.call,
                    start=self.position,
                    count=self.count,
                    skip=self.skip,
                    error_key=self.error_key,
                    error_text=self.error_text,
                    shared=shared,
                    write_fd=write_fd,
                    limits=self.limits,
                    parent=parent,
                )
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_fd)
        self.forks += 1
        return pid, read_fd

    def _one_child(self) -> Iterator[Result]:
        count = self.count
        status_at, value_at = _HEADER.size, _HEADER.size + count
        shared = mmap.mmap(-1, _HEADER.size + count * (1 + _VALUE.size))
        # The child's start counts against its first call: a child stuck before its first
        # call (a lock held at fork time) is killed like a slow call.
        _HEADER.pack_into(shared, 0, self.position, time.monotonic())
        pid, read_fd = self._spawn(shared)
        messages = _Messages(read_fd)
        alive = True
        self._restart = False

        def finished() -> Iterator[Result]:
            """Results the child has written since the last call, in order."""
            start = self.position
            statuses = shared[status_at + start : status_at + count]
            pending = statuses.find(b"\0")
            upto = count if pending == -1 else start + pending
            messages.drain()  # after the statuses: a message is written before its status
            values = struct.unpack_from(f"<{upto - start}i", shared, value_at + 4 * start)
            by_index = messages.by_index
            for offset, status in enumerate(statuses[: upto - start]):
                i = start + offset
                self.position = i + 1
                if i in by_index:
                    error_type, message = by_index[i]
                    yield Result(i, _STATUSES[status], values[offset], error_type, message)
                else:
                    yield Result(i, _STATUSES[status], values[offset])
                if self._restart:
                    return

        try:
            while self.position < count:
                select.select([read_fd], [], [], _POLL_SECONDS)
                yield from finished()
                if self._restart or self.position >= count:
                    return
                header = _HEADER.unpack_from(shared, 0)
                if header != _HEADER.unpack_from(shared, 0):
                    continue  # read while the child wrote it
                current, started = header
                messages.drain()
                late = current >= self.position and (
                    time.monotonic() - started > self.limits.call_seconds
                )
                if not (messages.closed or late):
                    continue
                # The child is gone (or is killed now): what it wrote is final, and the first
                # index without a result is the call it was on.
                killed = not messages.closed
                wait_status = _reap(pid, kill=killed)
                alive = False
                yield from finished()
                if self._restart or self.position >= count:
                    return
                stuck = self.position
                self.position += 1
                if killed:
                    yield Result(stuck, Status.TIMEOUT)
                else:
                    yield Result(stuck, Status.CRASHED, message=_death(wait_status))
                return
        finally:
            if alive:
                _reap(pid, kill=True)
            os.close(read_fd)
            shared.close()


def _death(wait_status: int | None) -> str:
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        name = signal.Signals(os.WTERMSIG(wait_status)).name
        return f"The process running the function died ({name})."
    return "The process running the function died."
