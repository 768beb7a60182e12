"""A small runc-compatible flag parser (argparse costs ~14 ms to import).

Accepts ``--flag value``, ``--flag=value``, ``-flag value`` (urfave/cli
style single dash), short aliases (``-b``), booleans with an optional
``=true|false``, flags before, between or after positionals, and ``--`` to end
options.
"""

from __future__ import annotations

from pyoci.errors import UsageError


class Flag:
    __slots__ = ("name", "kind", "aliases", "help", "default")

    def __init__(self, name: str, kind: str = "bool", *, aliases: tuple[str, ...] = (),
                 help: str = "", default: object = None) -> None:
        self.name = name              # canonical long name without dashes
        self.kind = kind              # "bool", "str", "int", "list"
        self.aliases = aliases
        self.help = help
        self.default = default


def parse(argv: list[str], flags: list[Flag], *, stop_at_positional: bool = False
          ) -> tuple[dict[str, object], list[str]]:
    """Return (options by canonical name, positionals).

    With ``stop_at_positional`` everything from the first positional on is
    returned untouched (used for the global flags before a subcommand, and
    for `exec ID cmd args...`)."""
    by_name: dict[str, Flag] = {}
    for f in flags:
        by_name[f.name] = f
        for a in f.aliases:
            by_name[a] = f
    opts: dict[str, object] = {f.name: ([] if f.kind == "list" else f.default) for f in flags}
    pos: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            pos.extend(argv[i + 1:])
            break
        if not arg.startswith("-") or arg == "-":
            if stop_at_positional:
                pos.extend(argv[i:])
                break
            pos.append(arg)
            i += 1
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        flag = by_name.get(name)
        if flag is None:
            raise UsageError(f"unknown flag {arg.split('=')[0]!r}")
        if flag.kind == "bool":
            if eq:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise UsageError(f"flag --{flag.name} takes true or false, not {value!r}")
                opts[flag.name] = value.lower() in ("true", "1")
            else:
                opts[flag.name] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"flag --{flag.name} needs a value")
            value = argv[i + 1]
            i += 2
        else:
            i += 1
        if flag.kind == "int":
            try:
                opts[flag.name] = int(value)
            except ValueError:
                raise UsageError(f"flag --{flag.name} takes a number, not {value!r}") from None
        elif flag.kind == "list":
            lst = opts[flag.name]
            assert isinstance(lst, list)
            lst.append(value)
        else:
            opts[flag.name] = value
    return opts, pos


def usage(flags: list[Flag]) -> str:
    lines = []
    for f in flags:
        names = ", ".join([f"--{f.name}"] + [("-" if len(a) == 1 else "--") + a for a in f.aliases])
        arg = "" if f.kind == "bool" else " VALUE"
        lines.append(f"  {names}{arg}\n      {f.help}")
    return "\n".join(lines)
