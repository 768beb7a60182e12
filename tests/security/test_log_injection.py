"""Log injection: a value the caller controls (here the --bundle path, which
the error message names) must not forge fields or lines in the --log file
that engines parse (Podman reads the file as one JSON object; logfmt readers
take the last value of a repeated key).

The naive path writes the message between quotes as it is, as a
hand-rolled formatter would; the demonstration shows the forged `level` and
`msg` winning.  pyoci's renderers (pyoci/logfmt.py) escape as logrus does:
the line parses back to exactly one error whose msg is the whole message.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from helpers.ocitest import Env

TEXT_BUNDLE = '/nonexistent/x" level=info msg="all good'
JSON_BUNDLE = '/nonexistent/x","level":"info","msg":"all good'
PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt_parse(line: str) -> dict[str, str]:
    """A logfmt reader: key=value pairs, quoted values unescaped, the last
    of a repeated key wins."""
    out: dict[str, str] = {}
    for key, value in PAIR.findall(line):
        out[key] = json.loads(value) if value.startswith('"') else value
    return out


def test_text_log_fields_cannot_be_forged(oci: Env) -> None:
    log = oci.path("log.txt")
    r = oci.pyoci("create", "--bundle", TEXT_BUNDLE, oci.cid(), log=log, log_format="text")
    assert r.rc == 1 and len(r.err_lines) == 1
    msg = r.err_lines[0].removeprefix("pyoci: ")
    # naive: the message pasted between quotes
    naive = logfmt_parse(f'time="2026-01-01T00:00:00Z" level=error msg="{msg}"')
    assert naive["level"] == "info" and naive["msg"].startswith("all good/"), naive
    # pyoci
    (line,) = log.read_text().splitlines()
    parsed = logfmt_parse(line)
    assert parsed["level"] == "error" and parsed["msg"] == msg, (line, parsed)
    assert set(parsed) == {"time", "level", "msg"}


def test_json_log_fields_cannot_be_forged(oci: Env) -> None:
    log = oci.path("log.json")
    r = oci.pyoci("create", "--bundle", JSON_BUNDLE, oci.cid(), log=log, log_format="json")
    assert r.rc == 1 and len(r.err_lines) == 1
    msg = r.err_lines[0].removeprefix("pyoci: ")
    # naive: json.loads keeps the last of the duplicated keys
    naive = json.loads('{"level":"error","msg":"' + msg + '","time":"2026-01-01T00:00:00Z"}')
    assert naive["level"] == "info", naive
    text = log.read_text()
    (line,) = text.splitlines()
    entry = json.loads(line)
    assert entry == {"level": "error", "msg": msg, "time": entry["time"]}
    assert Path(log).stat().st_size == len(text.encode())
