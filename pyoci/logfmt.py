"""structlog, configured once, with renderers for runc's log formats.

Imported by :mod:`pyoci.report` only when a line is actually logged (an
error, a warning, --debug), so a command that succeeds quietly never pays
for structlog.

``--log-format text`` is logrus' TextFormatter as runc 1.1.5 uses it::

    time="2026-12-07T19:23:08Z" level=error msg="container does not exist"

keys ``time``, ``level``, ``msg`` (left out when empty) and then the other
fields sorted by name; a value is written bare when it consists only of
``A-Za-z0-9-._/@^+``, otherwise quoted as Go's ``%q`` does (``\\n``, ``\\x01``,
``\\u00a0``; printable Unicode as it is).

``--log-format json`` is logrus' JSONFormatter: one object per line with the
keys sorted and Go's encoding/json escaping (``<``, ``>``, ``&``, U+2028 and
U+2029 as ``\\u....``; control characters as ``\\u00XX`` except ``\\n \\r \\t``;
other characters as UTF-8; bytes that were not UTF-8 as U+FFFD).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import structlog

_BARE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+")
_Q_SHORT = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            "\\": "\\\\", '"': '\\"'}
_J_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_quote(s: str) -> str:
    """Go's strconv.Quote of *s* (lone surrogates from surrogateescape are the
    bytes that were not UTF-8, written as ``\\xNN``)."""
    out = ['"']
    for ch in s:
        short = _Q_SHORT.get(ch)
        if short is not None:
            out.append(short)
            continue
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif ch.isprintable():
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def go_json_string(s: str) -> str:
    """*s* as Go's encoding/json writes a string (HTML-safe, as logrus does)."""
    out = ['"']
    for ch in s:
        short = _J_SHORT.get(ch)
        if short is not None:
            out.append(short)
            continue
        o = ord(ch)
        if o < 0x20:
            out.append(f"\\u{o:04x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_value(v: Any) -> str:
    """fmt.Sprint of a field value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    return str(v)


def _json_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_value(v)
    return go_json_string(str(v))


def render_text(fields: dict[str, Any]) -> str:
    """One logrus text line (without the newline) from time, level, msg and the rest."""
    parts = [f"time={_text_value(fields['time'])}", f"level={_text_value(fields['level'])}"]
    if fields.get("msg"):
        parts.append(f"msg={_text_value(fields['msg'])}")
    for key in sorted(k for k in fields if k not in ("time", "level", "msg")):
        parts.append(f"{key}={_text_value(fields[key])}")
    return " ".join(parts)


def _text_value(v: Any) -> str:
    s = _go_value(v)
    if s and all(ch in _BARE for ch in s):
        return s
    return go_quote(s)


def render_json(fields: dict[str, Any]) -> str:
    return "{" + ",".join(f"{go_json_string(k)}:{_json_value(fields[k])}" for k in sorted(fields)) + "}"


def timestamp() -> str:
    """RFC 3339 to the second, as runc's logrus writes it (in UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Sink:
    """Where structlog's rendered lines go: the user's stderr ("console",
    ``pyoci: ...``), or the --log destination (a file opened for each line
    in append mode, or stderr) in text or json."""

    def __init__(self, kind: str, path: str | None = None, fmt: str = "text") -> None:
        self.kind, self.path, self.fmt = kind, path, fmt

    def render(self, level: str, event: dict[str, Any]) -> str:
        msg = str(event.pop("event", ""))
        if self.kind == "console":
            return f"pyoci: {msg}" if level == "error" else f"pyoci: {level}: {msg}"
        fields = {"level": level, "msg": msg, "time": event.pop("timestamp", "") or timestamp(), **event}
        return render_json(fields) if self.fmt == "json" else render_text(fields)

    def write(self, line: str) -> None:
        try:
            if self.path is None:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
                return
            data = (line + "\n").encode("utf-8", "replace")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except (OSError, ValueError):
            pass

    debug = info = warning = error = critical = msg = write


def _add_time(logger: Any, method_name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.setdefault("timestamp", timestamp())
    return event


def _render(logger: Any, method_name: str, event: MutableMapping[str, Any]) -> str:
    assert isinstance(logger, Sink)
    return logger.render(method_name, dict(event))


_sinks: dict[tuple[str, str | None, str], Sink] = {}
_configured = False


def _sink_for(kind: str, path: str | None = None, fmt: str = "text") -> Sink:
    key = (kind, path, fmt)
    sink = _sinks.get(key)
    if sink is None:
        sink = _sinks[key] = Sink(kind, path, fmt)
    return sink


def _setup() -> None:
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[_add_time, _render],
        wrapper_class=structlog.make_filtering_bound_logger(0),
        logger_factory=_sink_for,
        cache_logger_on_first_use=False,
    )
    _configured = True


def reset() -> None:
    _sinks.clear()


def emit(level: str, msg: str, fields: dict[str, Any], *, console: bool, to_log: bool,
         log_path: str | None, log_format: str) -> None:
    """Log one event: on stderr as ``pyoci: ...`` when *console*, and in the
    --log format (to *log_path*, or stderr) when *to_log*."""
    _setup()
    if console:
        getattr(structlog.get_logger("console"), level)(msg)
    if to_log:
        getattr(structlog.get_logger("log", log_path, log_format), level)(msg, **fields)
