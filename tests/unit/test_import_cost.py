"""Loading a bundle's config.json imports nothing slow.

`pyoci create`/`run` read config.json on every container start, and engines run
the runtime several times per container.  ``import json`` costs ~10 ms (json
imports re, re imports enum, functools, collections), typing ~4 ms: none of them
may be on the success path of :func:`pyoci.spec.load.load_config`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOOD = REPO / "spec-fixtures" / "config" / "good"
FORBIDDEN = {
    "re", "enum", "json", "typing", "dataclasses", "jsonschema", "signal", "functools", "collections",
    "structlog",
}

_STATEMENT = (
    "import sys; sys.path.insert(0, {root!r}); "
    "import pyoci.spec.load; pyoci.spec.load.load_config({bundle!r})"
)


def _imported(bundle: Path) -> list[str]:
    """The modules `python -IS -X importtime` reports for load_config(bundle), in import order."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    statement = _STATEMENT.format(root=str(REPO), bundle=str(bundle))
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    return [
        line.rsplit("|", 1)[1].strip()
        for line in lines
        if line.startswith("import time:") and "self [us]" not in line
    ]


@pytest.mark.parametrize("config", ["full", "minimal", "podman-rootless-run-rm", "spec-1.3.0"])
def test_load_config_imports_nothing_slow(tmp_path: Path, config: str) -> None:
    shutil.copyfile(GOOD / f"{config}.json", tmp_path / "config.json")
    modules = _imported(tmp_path)
    assert "pyoci.spec._validator" in modules and "pyoci.jsonfast" in modules
    slow = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN)
    assert not slow, f"load_config imports {slow}"


_ERRORS = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pyoci.errors import ConfigError
from pyoci.spec.load import parse_config
for text, needle in [(b'{"ociVersion": "1.0.0"', "line 1 column 23: Expecting ',' delimiter"),
                     (b'{"ociVersion": "1.0.0"} x', "line 1 column 25: Extra data"),
                     (b"[NaN]", "NaN is not a JSON value"), (b"\xff", "not UTF-8 text (byte 0)")]:
    try:
        parse_config(text)
    except ConfigError as err:
        assert err.field == "$" and needle in str(err), str(err)
    else:
        raise AssertionError(text)
print("ok")
"""


def test_parse_errors_without_json_imported() -> None:
    """The error path imports json.decoder itself (CPython's scanner needs it to raise)."""
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _ERRORS, str(REPO)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr[-2000:]
