"""Facts about processes and the caller, read from /proc."""

from __future__ import annotations

import os


def write_text(path: str, data: str) -> None:
    """One write(2) of data to an existing file (procfs, cgroupfs): these
    files act on each write, so no buffering, truncation or creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def set_oom_score_adj(pid: int, adj: int, what: str) -> None:
    """Write /proc/PID/oom_score_adj; ``what`` names the value in the error
    (the config field, for create; the exec'd process's, for exec)."""
    try:
        write_text(f"/proc/{pid}/oom_score_adj", str(adj))
    except OSError as e:
        from pyoci.errors import PyociError

        raise PyociError(f"set oom_score_adj {adj} {what}", op="write oom_score_adj", errno=e.errno,
                         hint="lowering it needs CAP_SYS_RESOURCE") from None


def hold_fd_range(first: int, count: int) -> None:
    """Occupy every fd from first to first+count-1 that is not open with
    /dev/null, so that none of pyoci's own fds gets a number there.

    For --preserve-fds N: fds 3 to 3+N-1 are the caller's and reach the
    container; one the caller did not open would otherwise be the next fd
    pyoci opens (its state-directory lock, a socket of the sync protocol),
    which the container must never get.  (The C helper refuses to start when
    one of the protocol's fds lies in that range anyway.)

    A count below 0 or past this process's open-file limit is a UsageError."""
    highest = os.sysconf("SC_OPEN_MAX")     # RLIMIT_NOFILE's soft limit
    if not 0 <= count <= highest - first:
        from pyoci.errors import UsageError

        raise UsageError(f"--preserve-fds {count}: must be 0 to {max(0, highest - first)} "
                         f"(fds {first} and up, below the open-file limit {highest})")
    null = -1
    try:
        for fd in range(first, first + count):
            try:
                os.fstat(fd)
                continue
            except OSError:
                pass
            if null < 0:
                null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
                if null == fd:
                    os.set_inheritable(fd, True)
                    null = -1
                    continue
            os.dup2(null, fd, inheritable=True)
    finally:
        if null >= 0 and not first <= null < first + count:
            os.close(null)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot), None if gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return int(fields[19])


def is_alive(pid: int, started: int | None) -> bool:
    """True if pid runs (not a zombie) and is the process we recorded."""
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X", "x"):
        return False
    return started is None or int(fields[19]) == started


def in_initial_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            lines = f.read().split()
    except OSError:
        return True
    return lines == ["0", "0", "4294967295"]


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """pid, if it runs, and every process descending from it (its children,
    theirs, ...), from /proc/*/stat: the processes of a container without a
    pid namespace of its own, where its cgroup cannot tell (one pyoci did
    not create).  A process whose parent died was reparented elsewhere and
    is no longer found."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None and fields[0] not in ("Z", "X", "x"):
            children.setdefault(int(fields[1]), []).append(int(name))
    if _stat_fields(pid) is None:
        return []
    out = [pid]
    seen = {pid}
    i = 0
    while i < len(out):
        for k in children.get(out[i], []):
            if k not in seen:
                seen.add(k)
                out.append(k)
        i += 1
    return out


def pids_in_namespace_of(pid: int, ns: str = "pid") -> list[int]:
    """Every process sharing pid's namespace of type ``ns`` ("pid": the
    container's processes when it has its own pid namespace; "mnt": those
    of a container with a mount namespace of its own, exec'd ones included)."""
    try:
        target = os.readlink(f"/proc/{pid}/ns/{ns}")
    except OSError:
        return []
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/{ns}") == target:
                found.append(int(name))
        except OSError:
            continue
    return found
