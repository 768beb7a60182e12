"""uid/gid 4294967295 runs the program as root (issue 12 item 2).

setresuid(2) and setresgid(2) read (uid_t)-1 as "leave this id unchanged":
a runtime that passes process.user.uid 4294967295 (a valid uint32 for the
schema) straight to them leaves the program with the runtime's ids, root in
the container.  The naive path below makes exactly those calls in a fresh
set of namespaces and stays uid 0.  pyoci must refuse every id outside
0..2147483647, at create and on each exec path (--user, --additional-gids,
--process), and the program must never run.
"""

from __future__ import annotations

import json

from helpers.ocitest import BASE_PATH
from helpers.secutil import Side, describe, refused

MINUS_ONE = 4294967295

NAIVE = ("/usr/bin/python3 -c 'import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
         f"g = libc.setresgid({MINUS_ONE}, {MINUS_ONE}, {MINUS_ONE}); "
         f"u = libc.setresuid({MINUS_ONE}, {MINUS_ONE}, {MINUS_ONE}); "
         "print(g, u, os.getuid(), os.geteuid(), os.getgid())'")


def naive_stays_root(side: Side) -> None:
    p = side.naive(NAIVE, env={"PATH": BASE_PATH})
    assert p.returncode == 0 and p.stdout.split() == ["0", "0", "0", "0", "0"], (
        f"the naive setresuid(4294967295) did not leave the program root:\n{describe(p)}")


def test_create_with_uid_minus_one(side: Side) -> None:
    naive_stays_root(side)
    out = side.workdir("out")
    problems = []
    for field, value in (("uid", MINUS_ONE), ("gid", MINUS_ONE), ("additionalGids", [MINUS_ONE]),
                         ("uid", 2147483648)):
        b = side.bundle(["sh", "-c", "id > /out/ran"])
        b.bind(out, "/out")
        b.process["user"][field] = value
        side.save(b)
        cid = side.oci.cid()
        r = side.pyoci("run", "--bundle", str(b.path), cid)
        if r.rc == 0:
            side.pyoci("delete", "--force", cid)
        if (out / "ran").exists():
            problems.append(f"process.user.{field} {value}: the program ran as "
                            f"{(out / 'ran').read_text().strip()!r}:\n{r}")
            (out / "ran").unlink()
        elif not refused(r) or f"$.process.user.{field}" not in r.stderr:
            problems.append(f"process.user.{field} {value}: not refused with one line naming the field:\n{r}")
        elif (side.root / cid).exists():
            problems.append(f"process.user.{field} {value}: refused, but the container is left")
    assert not problems, "\n".join(problems)


def test_exec_with_uid_minus_one(side: Side) -> None:
    naive_stays_root(side)
    b = side.bundle(["sleep", "1000"])
    side.save(b)
    cid = side.oci.cid()
    side.pyoci("run", "--detach", "--bundle", str(b.path), cid).ok()
    problems = []
    try:
        procs: list[tuple[str, list[str]]] = [
            (f"--user {MINUS_ONE}", ["--user", str(MINUS_ONE)]),
            (f"--user 0:{MINUS_ONE}", ["--user", f"0:{MINUS_ONE}"]),
            (f"-g {MINUS_ONE}", ["-g", str(MINUS_ONE)]),
        ]
        for i, user in enumerate(({"uid": MINUS_ONE, "gid": 0}, {"uid": 0, "gid": MINUS_ONE},
                                  {"uid": 0, "gid": 0, "additionalGids": [MINUS_ONE]})):
            f = side.workdir(f"p{i}") / "process.json"
            f.write_text(json.dumps({"args": ["sh", "-c", "id > /tmp/ran"], "cwd": "/", "user": user,
                                     "env": [f"PATH={BASE_PATH}"]}))
            side.chown(f)
            procs.append((f"--process with user {user}", ["--process", str(f)]))
        for what, flags in procs:
            extra = [] if "--process" in flags else ["sh", "-c", "id > /tmp/ran"]
            r = side.pyoci("exec", *flags, cid, *extra)
            if not refused(r):
                problems.append(f"exec {what}: not refused with one error line:\n{r}")
        r = side.pyoci("exec", cid, "sh", "-c", "cat /tmp/ran 2>/dev/null || echo never-ran").ok()
        if r.stdout.strip() != "never-ran":
            problems.append(f"an exec'd program ran: {r.stdout.strip()!r}")
        ps = side.pyoci("ps", "--format", "json", cid).ok().json()
        if len(ps) != 1:
            problems.append(f"processes left in the container: {ps}")
    finally:
        side.pyoci("delete", "--force", cid)
    assert not problems, "\n".join(problems)
