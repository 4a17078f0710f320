"""kvsfs processes as the tests see them: find a mount's daemon, wait for it, catch leftovers.

A background kvsfs is not the test's child: its parent exits once the mount is up. So that the
tests still learn how a daemon ended (exit status, signal, a sanitizer's non-zero status), the
pytest process makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER): orphaned daemons
are re-parented to it and `reap()` collects their status. Without that (another OS), `reap()`
falls back to watching /proc and returns None for the status.
"""
import ctypes
import os
import time

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


def _state(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _argv(pid: int):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def kvsfs_processes():
    """[(pid, argv)] of every running (not zombie) process named kvsfs."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "kvsfs":
                    continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        st = _state(pid)
        argv = _argv(pid)
        if st and st not in ("Z", "X") and argv:
            out.append((pid, argv))
    return out


def daemon_pids(mountdir: str):
    """Pids of the kvsfs processes serving mountdir (their argv names it)."""
    mountdir = os.path.abspath(mountdir)
    return sorted(pid for pid, argv in kvsfs_processes()
                  if any(os.path.abspath(a) == mountdir for a in argv[1:] if a.startswith("/")))


def reap(pid: int, timeout: float):
    """Waits until pid has exited. Returns its exit status (-N: killed by signal N) when it is
    this process's child (directly or as subreaper), else None. Raises TimeoutError."""
    deadline = time.time() + timeout
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            if _state(pid) in (None, "Z", "X"):
                return None
        if time.time() >= deadline:
            raise TimeoutError(f"pid {pid} still running after {timeout} s")
        time.sleep(0.05)
