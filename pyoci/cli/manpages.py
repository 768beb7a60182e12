"""Man pages and --help text, generated from the CLI's own tables.

Every page comes from what the parser itself uses: the command list
(``pyoci.cli.COMMANDS``), the global flags (``GLOBAL_FLAGS``) and each
command module's ``USAGE``, ``FLAGS``, ``DESCRIPTION`` and ``EXAMPLE``; so
the pages cannot say something the parser does not do.  The committed pages
under docs/man are checked against a fresh generation by
tests/unit/test_manpages.py.  Regenerate them with::

    python -m pyoci.cli.manpages docs/man        (or: make man)

Not imported on any hot path: only ``--help`` and this generator use it.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

MAIN_DESCRIPTION = """pyoci is a low-level OCI container runtime: it creates and runs containers
from an OCI bundle (a directory holding config.json and a root file system)
as the OCI runtime specification describes, with runc's command line, so
that Podman, containerd, CRI-O and Docker can use it in place of runc.

Flags may be written --flag value, --flag=value or -flag value, before,
between or after the arguments; boolean flags take an optional =true or
=false (or =1, =0); -- ends the flags. For exec and ps every flag must come
before the container id, because what follows the id is the command to run
(exec) or options for ps(1).

Without --root the state directory is /run/pyoci for root in the initial
user namespace, $XDG_RUNTIME_DIR/pyoci for any other user, and
/tmp/pyoci-EUID when XDG_RUNTIME_DIR is not set."""

MAIN_EXAMPLE = "pyoci --root /run/pyoci --log /var/log/pyoci.log --log-format json list"

EXIT_STATUS = """0: success. 1: the command failed; the one line on standard error,
"pyoci: MESSAGE", says why. 2: the command line is wrong (unknown command
or flag, missing value, wrong number of arguments). 130: interrupted."""

# Where a command's exit status differs from the rule above.
EXIT_STATUS_OF = {
    "run": "Without --detach: the container's status, 128+N when its init was killed "
           "by signal N. Otherwise as below.",
    "exec": "Without --detach: the process's status, 128+N when it was killed by "
            "signal N. Otherwise as below.",
    "doctor": "1 when any check failed (a warning is not a failure). Otherwise as below.",
}


def commands() -> Iterator[tuple[str, str, ModuleType]]:
    """(name, one-line summary, module) of every registered command, in
    the order of ``pyoci --help``."""
    import importlib

    from pyoci.cli import COMMANDS

    for name, (modname, summary) in COMMANDS.items():
        yield name, summary, importlib.import_module(modname)


def aliases_of(name: str) -> list[str]:
    from pyoci.cli import ALIASES

    return sorted(a for a, target in ALIASES.items() if target == name)


def _metavar(flag: Flag) -> str:
    return "" if flag.kind == "bool" else ("N" if flag.kind == "int" else "VALUE")


def _flag_names(flag: Flag) -> list[str]:
    return [f"--{flag.name}"] + [("-" if len(a) == 1 else "--") + a for a in flag.aliases]


def _flag_help(flag: Flag) -> str:
    text = flag.help or "show this help"
    if flag.kind == "list" and "repeatable" not in text:
        text += " (repeatable)"
    if flag.default not in (None, False, 0, "") and "default" not in text:
        text += f" (default: {flag.default})"
    return text


def command_help(name: str, module: ModuleType, flags: list[Flag]) -> str:
    """What `pyoci NAME --help` prints: usage, summary, flags, an example."""
    from pyoci.cli import COMMANDS

    lines = [f"usage: pyoci {name} {module.USAGE}".rstrip(), "", COMMANDS[name][1]]
    alias = aliases_of(name)
    if alias:
        lines[-1] += f" (alias: {', '.join(alias)})"
    lines += ["", "flags:"]
    for f in flags:
        arg = _metavar(f)
        lines.append(f"  {', '.join(_flag_names(f))}{' ' + arg if arg else ''}")
        lines.append(f"      {_flag_help(f)}")
    example = getattr(module, "EXAMPLE", "")
    if example:
        lines += ["", "example:", f"  {example}"]
    lines += ["", f"See man pyoci-{name} (docs/man/pyoci-{name}.1) for more."]
    return "\n".join(lines) + "\n"


# --- roff -----------------------------------------------------------------

def _esc(text: str) -> str:
    """Text for a roff line: backslashes and minus signs escaped, and a
    leading dot or quote neutralised."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    if out[:1] in (".", "'"):
        out = "\\&" + out
    return out


def _para(text: str) -> list[str]:
    """Paragraphs (blank-line separated) as roff, one source line per line."""
    lines: list[str] = []
    for i, para in enumerate(text.strip().split("\n\n")):
        if i:
            lines.append(".PP")
        lines += [_esc(line.strip()) for line in para.splitlines() if line.strip()]
    return lines


def _header(title: str, summary: str, name_line: str) -> list[str]:
    return [
        '.\\" Generated by pyoci/cli/manpages.py from the CLI\'s flag tables; do not edit.',
        '.\\" Regenerate: python -m pyoci.cli.manpages docs/man (make man)',
        f'.TH {title.upper()} 1 "" "pyoci" "pyoci manual"',
        ".nh",
        ".SH NAME",
        f"{_esc(name_line)} \\- {_esc(summary)}",
    ]


def _options(flags: list[Flag]) -> list[str]:
    lines = [".SH OPTIONS"]
    if not flags:
        return lines + ["None."]
    for f in flags:
        arg = _metavar(f)
        names = ", ".join(f"\\fB{_esc(n)}\\fR" for n in _flag_names(f))
        lines += [".TP", names + (f" \\fI{arg}\\fR" if arg else "")]
        lines.append(_esc(_flag_help(f)))
    return lines


def _example(command: str) -> list[str]:
    return [".SH EXAMPLE", ".PP", ".nf", ".RS", _esc(command), ".RE", ".fi"]


def _see_also(skip: str) -> list[str]:
    pages = ["pyoci(1)"] if skip != "pyoci" else []
    pages += [f"pyoci-{name}(1)" for name, _, _ in commands() if name != skip]
    refs = [f"\\fB{_esc(p.split('(')[0])}\\fR({p.split('(')[1]}" for p in pages]
    return [".SH SEE ALSO", ",\n".join(refs) + ",", "\\fBrunc\\fR(8)"]


def render_command(name: str, summary: str, module: ModuleType) -> str:
    lines = _header(f"pyoci-{name}", summary, f"pyoci-{name}")
    lines += [".SH SYNOPSIS", f"\\fBpyoci\\fR [\\fIglobal flags\\fR] \\fB{_esc(name)}\\fR "
              f"{_esc(module.USAGE)}".rstrip()]
    alias = aliases_of(name)
    if alias:
        lines += [".br", "Alias: " + ", ".join(f"\\fBpyoci {_esc(a)}\\fR" for a in alias)]
    # A command added without DESCRIPTION/EXAMPLE still gets a page (its
    # docstring); tests/unit/test_manpages.py asks for the real ones.
    description = getattr(module, "DESCRIPTION", "") or (module.__doc__ or summary).strip()
    lines += [".SH DESCRIPTION"] + _para(description)
    lines += _options(list(module.FLAGS) + [Flag("help", aliases=("h",))])
    lines += [".SH EXIT STATUS"]
    if name in EXIT_STATUS_OF:
        lines += _para(EXIT_STATUS_OF[name]) + [".PP"]
    lines += _para(EXIT_STATUS)
    lines += _example(getattr(module, "EXAMPLE", "") or f"pyoci {name} --help") + _see_also(name)
    return "\n".join(lines) + "\n"


def render_main() -> str:
    from pyoci.cli import GLOBAL_FLAGS

    lines = _header("pyoci", "an OCI container runtime (runc-compatible)", "pyoci")
    lines += [".SH SYNOPSIS", "\\fBpyoci\\fR [\\fIglobal flags\\fR] \\fICOMMAND\\fR "
              "[\\fIflags\\fR] [\\fIARGS\\fR]"]
    lines += [".SH DESCRIPTION"] + _para(MAIN_DESCRIPTION)
    lines += [".SH COMMANDS"]
    for name, summary, _ in commands():
        alias = aliases_of(name)
        lines += [".TP", f"\\fBpyoci\\-{_esc(name)}\\fR(1)"
                  + (f" (alias: {', '.join(_esc(a) for a in alias)})" if alias else ""),
                  _esc(summary)]
    lines += _options(GLOBAL_FLAGS)
    lines[lines.index(".SH OPTIONS")] = ".SH GLOBAL FLAGS"
    lines += [".SH EXIT STATUS"] + _para(EXIT_STATUS)
    lines += _example(MAIN_EXAMPLE) + _see_also("pyoci")
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """File name -> contents of every page."""
    out = {"pyoci.1": render_main()}
    for name, summary, module in commands():
        out[f"pyoci-{name}.1"] = render_command(name, summary, module)
    return out


def write(directory: str) -> list[str]:
    """Write every page into DIRECTORY (made if missing) and remove stale
    pyoci*.1 files there; return the names written."""
    os.makedirs(directory, exist_ok=True)
    generated = pages()
    for old in os.listdir(directory):
        if old.startswith("pyoci") and old.endswith(".1") and old not in generated:
            os.unlink(os.path.join(directory, old))
    for fname, text in generated.items():
        with open(os.path.join(directory, fname), "w", encoding="utf-8") as f:
            f.write(text)
    return sorted(generated)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write("usage: python -m pyoci.cli.manpages DIRECTORY  (e.g. docs/man)\n")
        return 2
    names = write(argv[0])
    sys.stdout.write(f"wrote {len(names)} pages into {argv[0]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
