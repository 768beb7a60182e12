"""`pyoci COMMAND --help`: the text, from the command's own flag table.

Kept apart from manpages.py (which reads pyoci.cli's tables) so that
pyoci.cli can import it without an import cycle; manpages.py renders the
same flags as roff with these helpers.
"""

from __future__ import annotations

from pyoci.cli.flags import Flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType


def metavar(flag: Flag) -> str:
    return "" if flag.kind == "bool" else ("N" if flag.kind == "int" else "VALUE")


def flag_names(flag: Flag) -> list[str]:
    return [f"--{flag.name}"] + [("-" if len(a) == 1 else "--") + a for a in flag.aliases]


def flag_help(flag: Flag) -> str:
    text = flag.help or "show this help"
    if flag.kind == "list" and "repeatable" not in text:
        text += " (repeatable)"
    if flag.default not in (None, False, 0, "") and "default" not in text:
        text += f" (default: {flag.default})"
    return text


def command_help(name: str, module: ModuleType, flags: list[Flag], summary: str,
                 alias: list[str]) -> str:
    """What `pyoci NAME --help` prints: usage, summary (COMMANDS' line),
    flags, an example; ``alias``: the command's other names."""
    lines = [f"usage: pyoci {name} {module.USAGE}".rstrip(), "", summary]
    if alias:
        lines[-1] += f" (alias: {', '.join(alias)})"
    lines += ["", "flags:"]
    for f in flags:
        arg = metavar(f)
        lines.append(f"  {', '.join(flag_names(f))}{' ' + arg if arg else ''}")
        lines.append(f"      {flag_help(f)}")
    example = getattr(module, "EXAMPLE", "")
    if example:
        lines += ["", "example:", f"  {example}"]
    lines += ["", f"See man pyoci-{name} (docs/man/pyoci-{name}.1) for more."]
    return "\n".join(lines) + "\n"
