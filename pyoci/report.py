"""Where errors, warnings and debug lines go; every layer reports here and
the CLI configures it.

Every line in a log format goes through structlog (:mod:`pyoci.logfmt`
configures it once and holds the renderers), but only when such a line is
logged (a --log file is given, or --debug): a command that succeeds without
--debug never imports structlog, and neither does a failure or warning that
only prints its ``pyoci: ...`` line on stderr.

- stderr always gets one ``pyoci: MESSAGE`` line per failure
  (``pyoci: warning: ...`` for a warning);
- the --log file gets runc's formats (logrus text or JSON): exactly one
  ``{"level":"error",...}`` line on failure and nothing on success (Podman and
  the containerd shim parse it); warnings go there only with --debug;
- --debug lines go to the --log file, or to stderr without one (as runc), in
  the --log-format, with the bound fields (the container id) on every line.

:func:`phase` is the per-phase timer: with --debug it logs the milliseconds
spent since the previous phase boundary; without it it returns at once.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_log_path: str | None = None
_log_format = "text"
_debug = False
_context: dict[str, Any] = {}
_phases: list[tuple[str, float]] = []
_t_mark = 0.0
_t_start = 0.0


def configure(log_path: str | None, log_format: str, debug: bool) -> None:
    global _log_path, _log_format, _debug, _t_mark, _t_start
    _log_path = log_path or None
    _log_format = log_format
    _debug = debug
    _context.clear()
    _phases.clear()
    import sys

    if "pyoci.logfmt" in sys.modules:       # reconfigured in-process (tests): forget the old sinks
        sys.modules["pyoci.logfmt"].reset()
    if debug:
        import pyoci.logfmt  # noqa: F401  (structlog's import is not one of the phases)

        _t_mark = _t_start = time.perf_counter()


def debugging() -> bool:
    return _debug


def bind(**fields: Any) -> None:
    """Fields added to every later line (the container id)."""
    _context.update(fields)


def _console(level: str, msg: str) -> None:
    import sys

    sys.stderr.write(f"pyoci: {msg}\n" if level == "error" else f"pyoci: {level}: {msg}\n")
    sys.stderr.flush()


def _emit(level: str, msg: str, fields: dict[str, Any], console: bool, to_log: bool) -> None:
    if not to_log:
        # Only the plain `pyoci: ...` line, which has no log format to render:
        # written here, so that a failure without --log or --debug (`state` of
        # an unknown id, which engines and `make bench` call) does not pay
        # structlog's import (~50-70 ms: it brings asyncio and logging).
        if console:
            _console(level, msg)
        return
    try:
        from pyoci import logfmt
    except ImportError as e:        # structlog missing (a broken install): still one stderr line
        if console:
            import sys

            prefix = "pyoci: " if level == "error" else f"pyoci: {level}: "
            sys.stderr.write(f"{prefix}{msg} (and the log is unavailable: {e})\n")
        return

    # The bound fields (the container id) go on --debug lines; an error line
    # without --debug is exactly runc's (level, msg, time).
    logfmt.emit(level, msg, {**_context, **fields} if _debug else fields, console=console, to_log=to_log,
                log_path=_log_path, log_format=_log_format)


# The longest error line: a value from the config quoted in full (a 1 MB
# argument) would bury the message.
MAX_ERROR_CHARS = 4096


def error(msg: str) -> None:
    msg = " ".join(msg.split("\n"))
    if len(msg) > MAX_ERROR_CHARS:
        keep = MAX_ERROR_CHARS // 2
        gone = len(msg[keep:-keep].encode(errors="surrogatepass"))
        msg = f"{msg[:keep]} [... {gone} bytes of this message left out ...] {msg[-keep:]}"
    _emit("error", msg, {}, console=True, to_log=_log_path is not None)


def warning(msg: str) -> None:
    """Warnings go to stderr; to the --log file only with --debug: a second
    line there would break engines that parse the whole file as one JSON
    object."""
    _emit("warning", msg, {}, console=True, to_log=_debug)


def debug(msg: str, **fields: Any) -> None:
    if _debug:
        _emit("debug", msg, fields, console=False, to_log=True)


def phase(name: str) -> None:
    """Close the phase *name*: the time since the previous boundary (or since
    configure()) is logged with --debug and added to the summary."""
    if not _debug:
        return
    global _t_mark
    now = time.perf_counter()
    ms = round((now - _t_mark) * 1000, 3)
    _t_mark = now
    _phases.append((name, ms))
    debug(f"phase {name}: {ms} ms", phase=name, ms=ms)


def mark() -> None:
    """Start a phase here: the time since the previous boundary is not
    counted (time spent waiting for somebody else)."""
    global _t_mark
    if _debug:
        _t_mark = time.perf_counter()


def summary(command: str) -> None:
    """With --debug: one line with every phase's total milliseconds, in the
    order they first ran, and the command's total."""
    if not _debug:
        return
    totals: dict[str, float] = {}
    for name, ms in _phases:
        totals[name] = round(totals.get(name, 0.0) + ms, 3)
    total = round((time.perf_counter() - _t_start) * 1000, 3)
    text = " ".join(f"{k}={v}" for k, v in totals.items())
    debug(f"{command} timings (ms): {text} total={total}" if text else f"{command} took {total} ms",
          **{f"ms_{k}": v for k, v in totals.items()}, ms_total=total)


def notes(items: list[tuple[str, str]]) -> None:
    """Report a plan's notes: ("warning" | "debug", message) pairs."""
    for level, msg in items:
        if level == "warning":
            warning(msg)
        else:
            debug(msg)
