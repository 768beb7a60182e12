"""--debug on real containers: the steps and per-phase timings of run,
create/start and exec, with the container id on every line; and the quiet
success path of run/create/state/start/delete never importing structlog
(or jsonschema)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from helpers.ocitest import Env

LINE_RE = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" level=debug msg=.*')


def _timings(lines: list[str], command: str) -> dict[str, float]:
    """The phase totals of the summary line of *command* (text format)."""
    (summary,) = [ln for ln in lines if f'msg="{command} timings (ms): ' in ln]
    return {k: float(v) for k, v in re.findall(r" ms_([\w.]+)=([\d.]+)", summary)}


def test_debug_run_prints_phase_timings(oci: Env) -> None:
    b = oci.bundle(["true"])
    cid = oci.cid()
    # (--debug is a global flag: Env.pyoci puts --root first, then these)
    r = oci.pyoci("--debug", "run", "--bundle", str(b.save().path), cid)
    assert r.rc == 0, str(r)
    lines = r.err_lines
    assert lines and all(LINE_RE.match(ln) for ln in lines), r.stderr
    assert all(f" id={cid}" in ln for ln in lines), r.stderr
    t = _timings(lines, "run")
    for phase in ("load", "validate", "plan", "cgroups", "state", "spawn.clone", "spawn.sync2",
                  "spawn.sync4", "start", "wait", "delete", "total"):
        assert phase in t, (phase, t)
    assert t["total"] >= sum(v for k, v in t.items() if k != "total") * 0.99
    assert any(f'msg="created {cid}: init pid ' in ln for ln in lines)


def test_debug_json_log_for_create_start_exec(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"])
    cid = oci.cid()
    log = oci.path("debug.json")
    oci.pyoci("--debug", "create", "--bundle", str(b.save().path), cid, log=log, log_format="json").ok()
    oci.pyoci("--debug", "start", cid, log=log, log_format="json").ok()
    r = oci.pyoci("--debug", "exec", cid, "true", log=log, log_format="json").ok()
    assert r.stderr == ""                      # with --log the debug lines go there
    entries = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert {e["level"] for e in entries} == {"debug"}
    assert all(e["id"] == cid and set(e) >= {"level", "msg", "time"} for e in entries)
    summaries = {e["msg"].split(" ", 1)[0]: e for e in entries if " timings (ms): " in e["msg"]}
    assert set(summaries) == {"create", "start", "exec"}
    assert {"ms_load", "ms_validate", "ms_plan", "ms_cgroups", "ms_state", "ms_spawn.sync4"} <= \
        set(summaries["create"])
    assert {"ms_state", "ms_start"} <= set(summaries["start"])
    assert {"ms_state", "ms_plan", "ms_spawn.exec", "ms_wait"} <= set(summaries["exec"])
    # numbers (Go's encoder, which the json format follows, writes 2.0 as 2)
    assert all(type(v) in (int, float) for k, v in summaries["exec"].items() if k.startswith("ms_"))
    oci.pyoci("delete", "--force", cid).ok()


def _modules(oci: Env, *args: str) -> tuple[int, set[str]]:
    cmd, env = oci.command(args)
    err = oci.path(f"importtime.{len(list(oci.tmp.glob('importtime.*')))}")
    with open(err, "wb") as fe:
        p = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", *cmd], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=fe, close_fds=True,
                           timeout=60)
    lines = err.read_text().splitlines()
    return p.returncode, {ln.rsplit("|", 1)[1].strip() for ln in lines if ln.startswith("import time:")
                          and "self [us]" not in ln}


def test_quiet_commands_do_not_import_structlog(oci: Env) -> None:
    b = oci.bundle(["sleep", "1000"]).save()
    cid = oci.cid()
    for args in (("create", "--bundle", str(b.path), cid), ("state", cid), ("start", cid),
                 ("kill", cid, "KILL")):
        rc, mods = _modules(oci, *args)
        assert rc == 0, args
        slow = sorted(m for m in mods if m.split(".")[0] in ("structlog", "jsonschema", "pyoci.logfmt"))
        assert not slow and "pyoci.logfmt" not in mods, (args, slow)
    oci.wait_status(cid, "stopped")
    rc, mods = _modules(oci, "delete", cid)
    assert rc == 0 and "structlog" not in mods
    b2 = oci.bundle(["true"]).save()
    rc, mods = _modules(oci, "run", "--bundle", str(b2.path), oci.cid())
    assert rc == 0 and "structlog" not in mods and "pyoci.logfmt" not in mods
    # an error that is only the stderr line (no --log, no --debug) does not
    # pay for it either (`state` of an unknown id: engines and make bench);
    # an error line in the --log file goes through structlog
    rc, mods = _modules(oci, "state", cid)
    assert rc == 1 and "structlog" not in mods and "pyoci.logfmt" not in mods
    rc, mods = _modules(oci, "--log", str(oci.path("err.log")), "--log-format", "json", "state", cid)
    assert rc == 1 and "structlog" in mods
