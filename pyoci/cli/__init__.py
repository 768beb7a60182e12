"""pyoci's command line: runc-compatible global flags and subcommands.

``main(argv) -> int`` parses the global flags, imports only the module of the
requested subcommand (so `pyoci state` never pays for what `create` needs) and
turns a PyociError into one line on stderr, the --log line and exit status 1.
"""

from __future__ import annotations

import os
import sys

from pyoci import SPEC_VERSION, __version__, report
from pyoci.cli.flags import Flag, parse
from pyoci.errors import PyociError, UsageError

COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("pyoci.cli.create", "create a container"),
    "start": ("pyoci.cli.start", "start a created container"),
    "run": ("pyoci.cli.run", "create and start a container, wait for it, delete it"),
    "exec": ("pyoci.cli.exec_", "run another process in a container"),
    "state": ("pyoci.cli.state", "print a container's state JSON"),
    "kill": ("pyoci.cli.kill", "send a signal to a container's init (or every process)"),
    "delete": ("pyoci.cli.delete", "delete a stopped container (--force: any)"),
    "list": ("pyoci.cli.list_", "list containers"),
    "pause": ("pyoci.cli.pause", "freeze a running container"),
    "resume": ("pyoci.cli.resume", "thaw a paused container"),
    "ps": ("pyoci.cli.ps", "list a container's processes"),
    "update": ("pyoci.cli.update", "change a container's resource limits"),
    "events": ("pyoci.cli.events", "print a container's stats and OOM events (runc's JSON)"),
    "spec": ("pyoci.cli.spec", "write a default config.json"),
    "features": ("pyoci.cli.features", "print the runtime-spec features JSON"),
    "doctor": ("pyoci.cli.doctor", "check this user can run (rootless) containers here"),
    "validate": ("pyoci.cli.validate", "check a bundle against the schema, pyoci's rules and this host"),
}
ALIASES = {"ls": "list", "rm": "delete"}
NO_ID = {"list", "spec", "features", "doctor", "validate"}     # verbs whose argument is no container id

GLOBAL_FLAGS = [
    Flag("root", "str", help="state directory (default /run/pyoci, or $XDG_RUNTIME_DIR/pyoci rootless)"),
    Flag("log", "str", help="append errors (and --debug lines) to this file"),
    Flag("log-format", "str", default="text", help="text or json"),
    Flag("debug", help="log debug lines"),
    Flag("systemd-cgroup", help="accepted for runc compatibility"),
    Flag("rootless", "str", help="accepted for runc compatibility (auto|true|false)"),
    Flag("criu", "str", help="accepted for runc compatibility"),
    Flag("cgroup-manager", "str", help="accepted for Podman (cgroupfs|systemd|disabled)"),
    Flag("version", aliases=("v",), help="print the version"),
    Flag("help", aliases=("h",), help="show help"),
]


class Globals:
    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup", "root_given")

    def __init__(self, root: str, log: str | None, log_format: str, debug: bool,
                 systemd_cgroup: bool, root_given: bool = False) -> None:
        self.root = root
        self.root_given = root_given      # --root on the command line (not the default)
        self.log = log
        self.log_format = log_format
        self.debug = debug
        self.systemd_cgroup = systemd_cgroup


def version_text() -> str:
    return f"pyoci version {__version__}\ncommit: {__version__}\nspec: {SPEC_VERSION}\n"


def help_text() -> str:
    lines = ["usage: pyoci [global flags] COMMAND [flags] [ARGS]", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    from pyoci.cli.flags import usage

    lines += ["", "global flags:", usage(GLOBAL_FLAGS), "",
              "example:", "  pyoci --root /run/pyoci list", "",
              "`pyoci COMMAND --help` shows a command's flags; man pyoci (docs/man/pyoci.1)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    command = "pyoci"
    try:
        gopts, rest = parse(argv, GLOBAL_FLAGS, stop_at_positional=True)
        log_format = str(gopts["log-format"] or "text")
        if log_format not in ("text", "json"):
            raise UsageError(f"--log-format must be text or json, not {log_format!r}")
        log = str(gopts["log"]) if gopts["log"] else None
        report.configure(log, log_format, bool(gopts["debug"]))
        if gopts["version"]:
            sys.stdout.write(version_text())
            return 0
        if gopts["help"] or not rest:
            sys.stdout.write(help_text())
            return 0 if gopts["help"] else 2
        name = ALIASES.get(rest[0], rest[0])
        if name not in COMMANDS:
            raise UsageError(f"unknown command {rest[0]!r} (try --help)")
        command = name
        module = __import__(COMMANDS[name][0], fromlist=["run"])
        root = gopts["root"]
        if not root:
            from pyoci.lifecycle.store import default_root

            root = default_root()
        g = Globals(root=os.path.abspath(str(root)), log=log,
                    log_format=log_format, debug=bool(gopts["debug"]),
                    systemd_cgroup=bool(gopts["systemd-cgroup"]), root_given=bool(gopts["root"]))
        flags: list[Flag] = module.FLAGS + [Flag("help", aliases=("h",))]
        opts, pos = parse(rest[1:], flags, stop_at_positional=getattr(module, "STOP_AT_ARGS", False))
        if opts.get("help"):
            from pyoci.cli.helptext import command_help

            alias = sorted(a for a, target in ALIASES.items() if target == name)
            sys.stdout.write(command_help(name, module, flags, COMMANDS[name][1], alias))
            return 0
        if g.debug:
            if pos and name not in NO_ID:
                report.bind(id=pos[0])      # on every --debug line, from the first
            report.phase("imports")
            report.debug(f"{name}: argv {rest[1:]}, root {g.root}")
        rc: int = module.run(g, opts, pos)
        report.summary(name)
        return rc
    except PyociError as e:
        report.summary(command)
        report.error(str(e))
        return 2 if isinstance(e, UsageError) else e.exit_code
    except KeyboardInterrupt:
        report.error("interrupted")
        return 130
    except Exception as e:  # a bug: still one line (and one --log line), never a traceback
        where = ""
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{tb.tb_lineno}"
        report.error(f"internal error{where}: {type(e).__name__}: {e} (please report this)")
        return 1


def entry() -> None:
    """The launcher's entry point: run the verb, then leave without the
    interpreter's finalization (module teardown and a last garbage
    collection: 2-5 ms, paid by every engine call).  Everything pyoci opens
    is closed by the time main() returns; only the standard streams may
    still hold buffered output."""
    code = main(sys.argv[1:])
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if code == 0:
                code = 120   # what the interpreter exits with when it cannot flush
    os._exit(code)
