"""Where errors, warnings and debug lines go; every layer reports here and
the CLI configures it.  stderr always gets one line; the --log file gets text
or JSON: exactly one {"level":"error",...} line on failure and nothing on
success (Podman and the containerd shim parse it)."""

from __future__ import annotations

import os
import sys
import time

from pyoci import jsonfast

_log_path: str | None = None
_log_format = "text"
_debug = False


def configure(log_path: str | None, log_format: str, debug: bool) -> None:
    global _log_path, _log_format, _debug
    _log_path = log_path or None
    _log_format = log_format
    _debug = debug


def _timestamp() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _to_log(level: str, msg: str) -> None:
    if not _log_path:
        return
    if _log_format == "json":
        line = jsonfast.dumps({"level": level, "msg": msg, "time": _timestamp()})
    else:
        line = f"time={jsonfast.dumps(_timestamp())} level={level} msg={jsonfast.dumps(msg)}"
    try:
        fd = os.open(_log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


# The longest error line: a value from the config quoted in full (a 1 MB
# argument) would bury the message.
MAX_ERROR_CHARS = 4096


def error(msg: str) -> None:
    msg = " ".join(msg.split("\n"))
    if len(msg) > MAX_ERROR_CHARS:
        keep = MAX_ERROR_CHARS // 2
        gone = len(msg[keep:-keep].encode(errors="surrogatepass"))
        msg = f"{msg[:keep]} [... {gone} bytes of this message left out ...] {msg[-keep:]}"
    try:
        sys.stderr.write(f"pyoci: {msg}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    _to_log("error", msg)


def warning(msg: str) -> None:
    """Warnings go to stderr only: a second line in the --log file would break
    engines that parse the whole file as one JSON object."""
    try:
        sys.stderr.write(f"pyoci: warning: {msg}\n")
    except (OSError, ValueError):
        pass
    if _debug:
        _to_log("warning", msg)


def debug(msg: str) -> None:
    if _debug:
        try:
            sys.stderr.write(f"pyoci: debug: {msg}\n")
        except (OSError, ValueError):
            pass
        _to_log("debug", msg)


def notes(items: list[tuple[str, str]]) -> None:
    """Report a plan's notes: ("warning" | "debug", message) pairs."""
    for level, msg in items:
        if level == "warning":
            warning(msg)
        else:
            debug(msg)
