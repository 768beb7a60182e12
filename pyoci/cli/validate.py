"""pyoci validate: check a bundle (schema, pyoci's rules, this host) without
running anything; exit 0 when it would run here, 1 otherwise."""

from __future__ import annotations

import sys

from pyoci.cli.flags import Flag
from pyoci.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DESCRIPTION = """Check a bundle without creating anything, and list every problem found,
one a line, in three stages: schema (config.json against the runtime-spec
JSON Schema, with the jsonschema library: the JSON path, the rule broken
and the offending value), check (ociVersion and every semantic rule create
applies) and, once both pass, host (what this machine and caller can
provide: the rootfs, the namespaces created or joined, seccomp, idmapped
mounts, the cgroup files the limits need, labels, sysctls, rootless rules,
id maps covered by /etc/subuid and /etc/subgid). Exits 0 when the bundle
would run here, else 1 with one "bundle DIR would not run here: N problems"
error line. --json prints the same for tools."""
EXAMPLE = "pyoci validate --bundle /tmp/demo --json"
USAGE = "[--bundle DIR] [--json]"
FLAGS = [
    Flag("bundle", "str", aliases=("b",), default=".", help="the bundle directory (default: .)"),
    Flag("json", help="print {bundle, ok, problems: [{stage, path, rule, message, value}], ignored: [path]}"),
]


def run(g: Any, opts: dict[str, Any], pos: list[str]) -> int:
    import json
    import os

    from pyoci import report
    from pyoci.spec.validate import validate_bundle

    if pos:
        raise UsageError(f"validate takes no arguments (usage: pyoci validate {USAGE})")
    bundle = os.path.abspath(str(opts["bundle"] or "."))
    ignored: list[str] = []
    problems = validate_bundle(bundle, ignored)
    report.phase("validate")
    if opts["json"]:
        doc = {"bundle": bundle, "ok": not problems, "problems": [p.as_dict() for p in problems],
               "ignored": ignored}
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        for path in ignored:
            sys.stdout.write(f"ignored {path}: unknown property (create ignores it, as the "
                             "runtime-spec's Extensibility rule requires)\n")
        for p in problems:
            sys.stdout.write(p.line() + "\n")
        if not problems:
            sys.stdout.write(f"{bundle}: config.json passes the schema, pyoci's checks and this host's\n")
    if problems:
        n = len(problems)
        report.error(f"bundle {bundle} would not run here: {n} problem{'s' if n != 1 else ''}")
        return 1
    return 0
