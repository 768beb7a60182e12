"""Frozen cgroups and bounded waits (issue 12, item 16).

A ``linux.cgroupsPath`` naming a cgroup that is already frozen (v1
``freezer.state`` FROZEN, cgroup v2 ``cgroup.freeze`` 1) stopped the init as
soon as it was placed, and ``create`` waited for it forever.  pyoci refuses
such a cgroup before placing anything (runc: "container's cgroup
unexpectedly frozen"), and every wait on the container's init has a
timeout naming the sync point: a createRuntime hook that freezes the
container's own cgroup behind pyoci's back ends ``create`` with that error
after PYOCI_SYNC_TIMEOUT seconds, leaving nothing.

Both the v1 freezer hierarchy and the cgroup2 directory are tested (on a
hybrid host the cgroup2 mount, /sys/fs/cgroup/unified, has cgroup.freeze
without any controller); each test skips where its hierarchy is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.ocitest import Env

from pyoci.cgroups import manager as cgroups

KINDS = ["v1-freezer", "cgroup2"]


def _mount(kind: str) -> str:
    lay = cgroups.layout()
    mount = lay.v1.get("freezer") if kind == "v1-freezer" else lay.unified
    if not mount:
        pytest.skip(f"no {kind} hierarchy is mounted here")
    if kind == "cgroup2" and not os.path.exists(os.path.join(mount, "cgroup.procs")):
        pytest.skip("the cgroup2 mount has no cgroup.procs")
    return mount


def _freeze(d: Path, kind: str, frozen: bool) -> None:
    if kind == "v1-freezer":
        (d / "freezer.state").write_text("FROZEN" if frozen else "THAWED")
    else:
        if not (d / "cgroup.freeze").exists():
            pytest.skip("this kernel has no cgroup.freeze (Linux 5.2+)")
        (d / "cgroup.freeze").write_text("1" if frozen else "0")


def _everywhere(rel: str) -> list[str]:
    """The directories named rel below every hierarchy's mount."""
    lay = cgroups.layout()
    mounts = set(lay.v1.values()) | ({lay.unified} if lay.unified else set())
    return sorted(m + rel for m in mounts if os.path.isdir(m + rel))


@pytest.fixture(params=KINDS)
def frozen(request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    kind = request.param
    rel = f"/pyoci-frozen-{uuid.uuid4().hex[:10]}"
    d = Path(_mount(kind) + rel)
    d.mkdir()
    try:
        _freeze(d, kind, True)
        yield kind, d
    finally:
        _freeze(d, kind, False)
        for p in _everywhere(rel):
            for sub in sorted(Path(p).rglob("*"), reverse=True):
                if sub.is_dir():
                    sub.rmdir()
            os.rmdir(p)


@pytest.mark.parametrize("verb", ["create", "run"])
@pytest.mark.parametrize("below", [False, True], ids=["itself", "below"])
def test_pre_existing_frozen_cgroup_is_refused(oci: Env, frozen: tuple[str, Path], verb: str,
                                               below: bool) -> None:
    kind, d = frozen
    rel = d.name if not below else f"{d.name}/ctr"
    b = oci.bundle(["true"])
    b.linux["cgroupsPath"] = "/" + rel
    b.save()
    extra = ["-d"] if verb == "run" else []
    r = oci.pyoci(verb, *extra, "--bundle", str(b.path), oci.cid(), timeout=20).fails()
    assert r.duration < 5, f"refused only after {r.duration:.1f}s:\n{r}"
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("pyoci: container's cgroup unexpectedly "
                                                                 "frozen: "), str(r)
    assert str(d) in r.stderr and "internal error" not in r.stderr
    # nothing made: no state (the leak check), no directory in any hierarchy
    assert _everywhere("/" + rel) == ([] if below else [str(d)])
    assert not oci.root.exists() or os.listdir(oci.root) == []


def _freezing_hook(oci: Env, kind: str) -> dict[str, object]:
    """A createRuntime hook that freezes the container's own cgroup."""
    mount = _mount(kind)
    if kind == "v1-freezer":
        find, knob, value = r"sed -n 's/^[0-9]*:freezer://p'", "freezer.state", "FROZEN"
    else:
        find, knob, value = r"sed -n 's/^0:://p'", "cgroup.freeze", "1"
    script = (r"""pid=$(sed -n 's/.*"pid":\([0-9][0-9]*\).*/\1/p')""" + "\n"
              f"cg=$({find} /proc/$pid/cgroup)\n"
              f'echo {value} > "{mount}$cg/{knob}"\n')
    return oci.hook(script)


@pytest.mark.parametrize("kind", KINDS)
def test_a_wait_on_the_init_times_out_naming_the_step(oci: Env, kind: str) -> None:
    mount = _mount(kind)
    if kind == "cgroup2":
        probe = Path(mount) / f"pyoci-probe-{uuid.uuid4().hex[:10]}"
        probe.mkdir()
        has_freeze = (probe / "cgroup.freeze").exists()
        probe.rmdir()
        if not has_freeze:
            pytest.skip("this kernel has no cgroup.freeze (Linux 5.2+)")
    b = oci.bundle(["true"])
    b.config["hooks"] = {"createRuntime": [_freezing_hook(oci, kind)]}
    b.save()
    cid = oci.cid()
    r = oci.pyoci("run", "-d", "--bundle", str(b.path), cid, env={"PYOCI_SYNC_TIMEOUT": "2"},
                  timeout=30).fails()
    assert r.duration < 10, f"took {r.duration:.1f}s:\n{r}"
    assert len(r.err_lines) == 1, str(r)
    assert "timed out after 2s waiting for the container's init at sync 4 (READY)" in r.stderr, str(r)
    assert not _everywhere("/" + cid) and not any(cid in p for p in _own_cgroup_dirs()), \
        "the container's cgroups were left"


def _own_cgroup_dirs() -> list[str]:
    """Directories below pyoci's own cgroup in each hierarchy (relative
    cgroupsPath: the container's cgroup is made there)."""
    lay = cgroups.layout()
    own = cgroups.for_layout(lay).own()
    out = []
    for ctrl, mount in lay.v1.items():
        base = mount + own.get(ctrl, "/")
        if os.path.isdir(base):
            out += [os.path.join(base, n) for n in os.listdir(base)]
    return out
