"""The man pages in docs/man are generated from the CLI's own flag tables
(pyoci/cli/manpages.py) and must not drift from them; `pyoci COMMAND --help`
shows the same flags and an example."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import pytest

from pyoci.cli import COMMANDS, GLOBAL_FLAGS, main, manpages
from pyoci.cli.flags import Flag, parse

MAN_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "man")
REGENERATE = "regenerate them with `make man` (python -m pyoci.cli.manpages docs/man) and commit"


def test_committed_pages_match_a_fresh_generation(tmp_path: object) -> None:
    out = str(tmp_path)
    written = manpages.write(out)
    committed = sorted(f for f in os.listdir(MAN_DIR) if f.endswith(".1"))
    assert committed == written, f"docs/man has {committed}, the CLI has {written}: {REGENERATE}"
    stale = []
    for name in written:
        with open(os.path.join(out, name), encoding="utf-8") as f:
            fresh = f.read()
        with open(os.path.join(MAN_DIR, name), encoding="utf-8") as f:
            if f.read() != fresh:
                stale.append(name)
    assert not stale, f"docs/man/{', '.join(stale)} differ from the CLI's flag tables: {REGENERATE}"


def test_every_command_has_a_page_description_and_example() -> None:
    pages = manpages.pages()
    assert "pyoci.1" in pages
    for name in COMMANDS:
        page = pages[f"pyoci-{name}.1"]
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLE",
                        "SEE ALSO"):
            assert f".SH {section}\n" in page, (name, section)
    for name, _, module in manpages.commands():
        assert getattr(module, "DESCRIPTION", "").strip(), f"{module.__name__} needs a DESCRIPTION string"
        assert getattr(module, "EXAMPLE", ""), f"{module.__name__} needs an EXAMPLE string"
        assert shlex.split(module.EXAMPLE)[:2] == ["pyoci", name], (name, module.EXAMPLE)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_example_parses_with_the_commands_flags(name: str) -> None:
    """An example that uses a renamed or removed flag fails here."""
    module = dict((n, m) for n, _, m in manpages.commands())[name]
    argv = shlex.split(module.EXAMPLE)[2:]
    _, pos = parse(argv, list(module.FLAGS), stop_at_positional=getattr(module, "STOP_AT_ARGS", False))
    assert name in ("features", "list", "spec", "validate") or pos, (name, argv)
    parse(shlex.split(manpages.MAIN_EXAMPLE)[1:], GLOBAL_FLAGS, stop_at_positional=True)


def _flag_spellings(flags: list[Flag]) -> list[str]:
    return [s for f in flags for s in [f"--{f.name}"] + [("-" if len(a) == 1 else "--") + a
                                                         for a in f.aliases]]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_every_flag_and_the_example(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    module = dict((n, m) for n, _, m in manpages.commands())[name]
    assert out.split("\n")[0].split()[:3] == ["usage:", "pyoci", name]
    for spelling in _flag_spellings(list(module.FLAGS)) + ["--help", "-h"]:
        assert spelling in out, (name, spelling)
    assert f"example:\n  {module.EXAMPLE}\n" in out
    page = manpages.pages()[f"pyoci-{name}.1"]
    for spelling in _flag_spellings(list(module.FLAGS)):
        assert f"\\fB{spelling.replace('-', chr(92) + '-')}\\fR" in page, (name, spelling)


def test_global_help_lists_every_command_and_global_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name} " in out
    for spelling in _flag_spellings(GLOBAL_FLAGS):
        assert spelling in out
    assert "example:" in out


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_pages_render_without_groff_warnings() -> None:
    for name in sorted(os.listdir(MAN_DIR)):
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(MAN_DIR, name)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and not proc.stderr, (name, proc.stderr)
