"""pyoci's log lines: runc's (logrus') text and JSON formats, byte for byte,
through structlog; and the CLI's contract (one stderr line per failure, one
--log line, nothing on success, --debug lines with the container id)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyoci import logfmt

PYOCI = [sys.executable, "-c", "import sys; from pyoci.cli import main; sys.exit(main(sys.argv[1:]))"]
TEXT_RE = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" level=(\w+)( msg=.*)?$')
NASTY = '/no-such<&>"\\ \n\t\x01\x7fü\u2028\u00a0x\x08\x0c\x1b\u0301z'


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYOCI, *args], capture_output=True, text=True, check=False, cwd=cwd)


def test_text_quoting() -> None:
    assert logfmt.render_text({"time": "T", "level": "error", "msg": "a-b.c_d/e@f^g+h"}) == \
        "time=T level=error msg=a-b.c_d/e@f^g+h"
    assert logfmt.render_text({"time": "2026-12-07T19:23:08Z", "level": "error", "msg": "no such file"}) == \
        'time="2026-12-07T19:23:08Z" level=error msg="no such file"'
    assert logfmt.go_quote('a"b\\c\nd\x01\x7f\u00a0\u2028é\U0001F600\U000E0001') == \
        '"a\\"b\\\\c\\nd\\x01\\x7f\\u00a0\\u2028é\U0001F600\\U000e0001"'
    # bytes that were not UTF-8 (surrogateescape) are written as Go writes them
    assert logfmt.go_quote("\udcff") == '"\\xff"'
    # an empty msg is left out; other fields follow, sorted, numbers bare
    fields = {"time": "T", "level": "debug", "msg": "", "z": 1.5, "a": 2.0, "id": "c 1"}
    assert logfmt.render_text(fields) == 'time=T level=debug a=2 id="c 1" z=1.5'


def test_json_escaping() -> None:
    line = logfmt.render_json({"time": "T", "level": "error", "msg": NASTY + "\udcff", "ms": 1.25})
    assert line == ('{"level":"error","ms":1.25,"msg":"/no-such\\u003c\\u0026\\u003e\\"\\\\ '
                    '\\n\\t\\u0001\x7fü\\u2028\u00a0x\\u0008\\u000c\\u001b\u0301z\ufffd","time":"T"}')
    assert json.loads(line)["msg"] == NASTY + "\ufffd"


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_same_bytes_as_runc(tmp_path: Path, fmt: str) -> None:
    """runc's own error line for a bundle path full of characters that need
    escaping, and pyoci's rendering of the same message: identical."""
    proc = subprocess.run(["runc", "--root", str(tmp_path / "runc"), "--log-format", fmt, "run", "-b", NASTY,
                           "x"], capture_output=True, check=False)
    theirs = proc.stderr.decode("utf-8", "surrogateescape").rstrip("\n")
    assert proc.returncode != 0 and theirs.count("\n") == 0, theirs
    msg = f"runc run failed: chdir {NASTY}: no such file or directory"
    if fmt == "json":
        when = json.loads(theirs)["time"]
        ours = logfmt.render_json({"level": "error", "msg": msg, "time": when})
    else:
        when = theirs.split('"', 2)[1]
        ours = logfmt.render_text({"time": when, "level": "error", "msg": msg})
    assert ours == theirs


def test_error_lines(tmp_path: Path) -> None:
    for fmt in ("text", "json"):
        log = tmp_path / f"log.{fmt}"
        r = _cli("--root", str(tmp_path), "--log", str(log), "--log-format", fmt, "state", "nope")
        assert r.returncode == 1
        assert r.stderr == "pyoci: container 'nope' does not exist\n"
        (line,) = log.read_text().splitlines()
        if fmt == "json":
            entry = json.loads(line)
            assert list(entry) == ["level", "msg", "time"]        # runc's keys, no more
            assert entry["level"] == "error" and entry["msg"] == "container 'nope' does not exist"
        else:
            m = TEXT_RE.match(line)
            assert m and m.group(1) == "error", line
            assert line.endswith(" msg=\"container 'nope' does not exist\"")


def test_success_logs_nothing(tmp_path: Path) -> None:
    log = tmp_path / "log"
    (tmp_path / "state").mkdir()
    r = _cli("--root", str(tmp_path / "state"), "--log", str(log), "--log-format", "json", "list")
    assert r.returncode == 0 and r.stderr == ""
    assert not log.exists()


def test_debug_lines_go_to_stderr_without_log(tmp_path: Path) -> None:
    r = _cli("--root", str(tmp_path), "--debug", "state", "nope")
    lines = r.stderr.splitlines()
    assert lines[-1] == "pyoci: container 'nope' does not exist"
    debug = lines[:-1]
    assert debug and all(TEXT_RE.match(ln) and " level=debug " in ln for ln in debug), lines
    assert any("id=nope" in ln for ln in debug), lines
    assert any("state took" in ln or "state timings" in ln for ln in debug), lines


def test_debug_json_to_log_file(tmp_path: Path) -> None:
    log = tmp_path / "log"
    r = _cli("--root", str(tmp_path), "--debug", "--log", str(log), "--log-format", "json", "state", "nope")
    assert r.stderr == "pyoci: container 'nope' does not exist\n"
    entries = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert [e["level"] for e in entries][-1] == "error"
    assert {e["level"] for e in entries[:-1]} == {"debug"}
    assert all(e.get("id") == "nope" for e in entries if "argv" not in e["msg"])


def test_warning_goes_to_stderr_only(tmp_path: Path) -> None:
    """(runc's log file gets no second line: engines parse it as one object.)"""
    code = ("import sys; from pyoci import report; report.configure(sys.argv[1], 'json', False); "
            "report.warning('careful')")
    log = tmp_path / "log"
    r = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True, check=True)
    assert r.stderr == "pyoci: warning: careful\n" and not log.exists()


def test_quiet_report_does_not_import_structlog() -> None:
    code = ("import sys; from pyoci import report; report.configure(None, 'text', False); "
            "report.phase('load'); report.debug('x'); report.summary('run'); "
            "print('structlog' in sys.modules, 'pyoci.logfmt' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout == "False False\n"
    # an error that is only the stderr line does not pay for it either ...
    quiet_error = code.replace("report.summary('run'); ", "report.error('boom'); ")
    r = subprocess.run([sys.executable, "-c", quiet_error], capture_output=True, text=True, check=True)
    assert r.stdout == "False False\n" and r.stderr == "pyoci: boom\n"
    # ... one with a --log line to render does
    logged = quiet_error.replace("configure(None,", "configure('/dev/null',")
    r = subprocess.run([sys.executable, "-c", logged], capture_output=True, text=True, check=True)
    assert r.stdout == "True True\n" and r.stderr == "pyoci: boom\n"


def test_phase_timings_without_debug_are_cheap() -> None:
    code = ("import time; from pyoci import report; report.configure(None, 'text', False); "
            "t = time.perf_counter(); [report.phase('x') for _ in range(100000)]; "
            "print(time.perf_counter() - t)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(r.stdout) < 0.5            # < 5 µs a call, even on a loaded machine (~0.05 µs)
    assert os.path.exists(logfmt.__file__)


def test_error_line_without_structlog() -> None:
    """A broken install (structlog missing) still gets its one stderr line, no traceback."""
    code = ("import sys; sys.modules['structlog'] = None; from pyoci.cli import main; "
            "sys.exit(main(['--root', sys.argv[1], '--log', sys.argv[2], 'state', 'nope']))")
    r = subprocess.run([sys.executable, "-c", code, "/nonexistent-root", "/nonexistent-dir/log"],
                       capture_output=True, text=True,
                       check=False)
    assert r.returncode == 1
    assert r.stderr.startswith("pyoci: container 'nope' does not exist (and the log is unavailable: ")
    assert r.stderr.count("\n") == 1
