"""pyoci events: a container's statistics and OOM events (runc's JSON lines)."""

from __future__ import annotations

import sys

from pyoci.cli._common import one_id
from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Print, one JSON object a line as runc does, the container's statistics
every --interval and an OOM event as soon as the kernel reports one. The
stream ends, with status 0, when the container is deleted. --stats prints
one statistics object and exits."""
EXAMPLE = "pyoci events --stats web"
USAGE = "[--stats] [--interval DURATION] ID"
FLAGS = [
    Flag("interval", "str", default="5s", help="time between stats (a Go duration: 5s, 100ms, 1m30s)"),
    Flag("stats", help="print the container's stats once, then exit"),
]

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds: a sequence of decimal numbers
    each with a unit (ns, us, µs, ms, s, m, h), an optional sign; "0" alone
    needs no unit.  ValueError otherwise."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    i = 0
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        number = s[i:j]
        if not number or number == "." or number.count(".") > 1:
            raise ValueError(f"invalid duration {text!r}")
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if not unit:
            raise ValueError(f"missing unit in duration {text!r}")
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += float(number) * _UNITS[unit]
        i = k
    return sign * total


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    from pyoci import jsonfast
    from pyoci.lifecycle import events

    cid = one_id(pos, USAGE)
    try:
        interval = parse_duration(str(opts["interval"]))
    except ValueError as e:
        raise UsageError(f"--interval: {e}") from None
    if interval <= 0:
        raise UsageError("--interval: the duration must be greater than 0")

    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(jsonfast.dumps(event) + "\n")
        sys.stdout.flush()

    try:
        if opts["stats"]:
            emit(events.stats(g.root, cid))
        else:
            events.stream(g.root, cid, interval, emit)
    except BrokenPipeError:
        # The reader went away: stop quietly (and keep Python's exit flush quiet).
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
