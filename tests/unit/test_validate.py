"""`pyoci validate`: the schema stage (jsonschema on the shipped schema), the
semantic checks (all of them), the host stage, the CLI's output and exit
status; and the shipped jsonschema validator agreeing with the generated
fast validator of the create path on every fixture and on mutated configs."""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyoci.errors import ConfigError
from pyoci.spec import _validator
from pyoci.spec.validate import SCHEMA_FILE, schema_validator, validate_bundle

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "spec-fixtures"
GOOD = sorted((FIXTURES / "config" / "good").glob("*.json"))
BAD = sorted((FIXTURES / "config" / "bad").glob("*.json"))
PODMAN = [p for p in GOOD if p.stem.startswith("podman-")]
PYOCI = [sys.executable, "-c", "import sys; from pyoci.cli import main; sys.exit(main(sys.argv[1:]))"]


def _expectation(bad: Path) -> tuple[str, str]:
    lines = bad.with_suffix(".expect").read_text().splitlines()
    kind = lines[1].split(":", 1)[1].strip() if len(lines) > 1 else "schema"
    return lines[0].strip(), kind


def _bundle(tmp_path: Path, doc: Any | bytes, rootfs: bool = True) -> Path:
    if rootfs:
        (tmp_path / "rootfs").mkdir(exist_ok=True)
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    (tmp_path / "config.json").write_bytes(data)
    return tmp_path


def _runnable_here(doc: dict[str, Any]) -> dict[str, Any]:
    """An engine's config made to run on this machine: the rootfs in the
    bundle, new namespaces instead of the engine's (long gone) ones."""
    doc = copy.deepcopy(doc)
    doc["root"]["path"] = "rootfs"
    for ns in (doc.get("linux") or {}).get("namespaces") or []:
        ns.pop("path", None)
    return doc


def test_shipped_schema_is_the_fixture_schema() -> None:
    assert Path(SCHEMA_FILE).read_bytes() == (FIXTURES / "schema" / "config.schema.json").read_bytes()


def test_schema_is_package_data() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '"spec/schema/*.json"' in text


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_fixture_path_is_reported(tmp_path: Path, path: Path) -> None:
    expected, kind = _expectation(path)
    problems = validate_bundle(str(_bundle(tmp_path, path.read_bytes())))
    stages = {"schema": "schema", "check": "check", "load": "load"}
    found = [p for p in problems if p.path == expected or p.path.startswith(expected + ".")
             or p.path.startswith(expected + "[") or expected.startswith(p.path + ".")]
    assert found, f"{expected} not among {[(p.stage, p.path) for p in problems]}"
    if kind in stages:
        assert any(p.stage == stages[kind] for p in found), [p.line() for p in problems]


def _minimal() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    doc["linux"] = {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")]}
    return doc


def test_every_error_at_once(tmp_path: Path) -> None:
    doc = _minimal()
    doc["process"]["user"]["uid"] = "root"           # schema: type
    doc["process"]["args"] = "sh"                     # schema: type
    doc["hostname"] = 7                                # schema: type
    doc["linux"]["namespaces"].append({"type": "bogus"})   # schema: enum
    problems = validate_bundle(str(_bundle(tmp_path, doc)))
    paths = {p.path for p in problems if p.stage == "schema"}
    assert {"$.process.user.uid", "$.process.args", "$.hostname"} <= paths
    assert any(p.path.startswith("$.linux.namespaces[") for p in problems)
    uid = next(p for p in problems if p.path == "$.process.user.uid")
    assert uid.rule == 'type: "integer"' and uid.value == '"root"'


def test_every_semantic_check_at_once(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    doc["process"]["cwd"] = "relative"
    doc["process"]["env"] = ["=x"]
    doc.setdefault("linux", {})["cgroupsPath"] = "../escape"
    problems = validate_bundle(str(_bundle(tmp_path, doc)))
    assert [p.stage for p in problems] == ["check"] * 3, [p.line() for p in problems]
    assert {p.path for p in problems} == {"$.process.cwd", "$.process.env[0]", "$.linux.cgroupsPath"}
    assert {p.rule for p in problems} == {"check_process_cwd", "check_process_env", "check_cgroups_path"}


def test_long_values_are_cut(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    doc["hostname"] = ["x" * 500]
    problems = validate_bundle(str(_bundle(tmp_path, doc)))
    (p,) = [p for p in problems if p.path == "$.hostname" and p.stage == "schema"]
    assert p.value is not None and len(p.value) <= 80 and p.value.endswith("...")
    assert len(p.message) <= 200


def test_missing_rootfs_is_a_host_problem(tmp_path: Path) -> None:
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    problems = validate_bundle(str(_bundle(tmp_path, doc, rootfs=False)))
    assert [(p.stage, p.path) for p in problems] == [("host", "$.root.path")]


def test_unreadable_and_broken_json(tmp_path: Path) -> None:
    problems = validate_bundle(str(tmp_path))
    assert [p.stage for p in problems] == ["load"] and "config.json" in problems[0].message
    problems = validate_bundle(str(_bundle(tmp_path, b'{"ociVersion": ')))
    assert [p.stage for p in problems] == ["load"]


@pytest.mark.parametrize("path", PODMAN, ids=[p.stem for p in PODMAN])
def test_podman_configs(tmp_path: Path, path: Path) -> None:
    """Podman's real configs pass the schema and every check; on this host
    (root, rootfs in the bundle, fresh namespaces) they would run."""
    if os.geteuid() != 0:
        pytest.skip("the host stage of these configs assumes root")
    doc = json.loads(path.read_bytes())
    problems = validate_bundle(str(_bundle(tmp_path, doc)))
    assert not [p for p in problems if p.stage in ("schema", "check")], [p.line() for p in problems]
    # As captured: the overlay rootfs (and joined namespaces) are long gone.
    assert {p.stage for p in problems} <= {"host"}
    assert any(p.path == "$.root.path" for p in problems)
    problems = validate_bundle(str(_bundle(tmp_path, _runnable_here(doc))))
    assert not problems, [p.line() for p in problems]


def test_joined_namespace_missing(tmp_path: Path) -> None:
    """A joined namespace that does not exist is a host problem naming its path."""
    doc = _minimal()
    doc["linux"]["namespaces"] = [{"type": "network", "path": str(tmp_path / "no-such-netns")},
                                  *[n for n in doc["linux"]["namespaces"] if n["type"] != "network"]]
    problems = validate_bundle(str(_bundle(tmp_path, doc)))
    assert [(p.stage, p.path) for p in problems] == [("host", "$.linux.namespaces[0].path")]


def test_sysctl_this_kernel_lacks(tmp_path: Path) -> None:
    doc = _minimal()
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "net.ipv4.no_such_knob_here": "1"}
    problems = validate_bundle(str(_bundle(tmp_path, doc)))
    found = [(p.stage, p.path) for p in problems]
    assert found == [("host", "$.linux.sysctl['net.ipv4.no_such_knob_here']")], [p.line() for p in problems]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYOCI, *args], capture_output=True, text=True, check=False, cwd=cwd)


def test_cli_exit_status_and_json(tmp_path: Path) -> None:
    good = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    (tmp_path / "a").mkdir()
    ok = _cli("validate", "--bundle", str(_bundle(tmp_path / "a", good)))
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    bad = copy.deepcopy(good)
    bad["process"]["cwd"] = "rel"
    bad["hostname"] = 1
    (tmp_path / "b").mkdir()
    proc = _cli("--log", str(tmp_path / "log"), "--log-format", "json", "validate", "--json",
                "--bundle", str(_bundle(tmp_path / "b", bad)))
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False and {p["path"] for p in out["problems"]} >= {"$.hostname"}
    assert all(set(p) >= {"stage", "path", "rule", "message"} for p in out["problems"])
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("pyoci: bundle ")
    (line,) = (tmp_path / "log").read_text().splitlines()
    assert json.loads(line)["level"] == "error"
    text = _cli("validate", cwd=tmp_path / "b")    # --bundle defaults to "."
    assert text.returncode == 1 and "$.hostname" in text.stdout


def test_unknown_properties_are_named_not_problems(tmp_path: Path) -> None:
    """create ignores unknown properties (the runtime-spec's Extensibility
    rule), so validate names them and still exits 0; a real problem beside
    them is still one."""
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    doc.setdefault("linux", {}).setdefault("resources", {})["memory"] = {"limt": 5}
    doc["org.example.extension"] = {"x": 1}
    (tmp_path / "a").mkdir()
    b = _bundle(tmp_path / "a", doc)
    r = _cli("validate", "--bundle", str(b))
    assert r.returncode == 0 and r.stderr == "", (r.stdout, r.stderr)
    assert "ignored $.linux.resources.memory.limt: unknown property" in r.stdout
    r = _cli("validate", "--json", "--bundle", str(b))
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["problems"] == []
    assert sorted(out["ignored"]) == ["$.linux.resources.memory.limt", "$['org.example.extension']"]
    doc["process"]["cwd"] = "rel"
    (tmp_path / "b").mkdir()
    r = _cli("validate", "--json", "--bundle", str(_bundle(tmp_path / "b", doc)))
    out = json.loads(r.stdout)
    assert r.returncode == 1 and [p["path"] for p in out["problems"]] == ["$.process.cwd"]


# -- the shipped jsonschema validator and the generated one agree ------------


def _walk(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield at, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*at, i))


_GONE = object()


def _mutate(doc: Any, at: tuple[Any, ...], new: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for step in at[:-1]:
        parent = parent[step]
    if new is _GONE:
        del parent[at[-1]]
    else:
        parent[at[-1]] = new
    return doc


def _generated_ok(doc: Any) -> bool:
    try:
        _validator.validate(doc)
    except ConfigError:
        return False
    return True


def _agreement(doc: Any, what: str, out: list[str]) -> bool:
    schema_ok = schema_validator().is_valid(doc)
    if schema_ok != _generated_ok(doc):
        out.append(f"{what}: jsonschema {'accepts' if schema_ok else 'rejects'}, generated validator not")
    return schema_ok


def test_fixtures_agree() -> None:
    out: list[str] = []
    for path in GOOD:
        assert _agreement(json.loads(path.read_bytes()), path.stem, out)
    for path in BAD:
        if _expectation(path)[1] != "load":
            _agreement(json.loads(path.read_bytes()), path.stem, out)
    assert not out, "\n".join(out)


def test_mutated_configs_agree() -> None:
    rng = random.Random(1312)
    wrong = [None, -1, 2**32, 1.5, 1.0, True, "", "x", [], {}, ["x"], {"x": 1}]
    out: list[str] = []
    valid = invalid = 0
    for path in GOOD:
        doc = json.loads(path.read_bytes())
        spots = [at for at, _ in _walk(doc) if at]
        for at in rng.sample(spots, min(len(spots), 40)):
            new = _GONE if isinstance(at[-1], str) and rng.random() < 0.2 else rng.choice(wrong)
            if _agreement(_mutate(doc, at, new), f"{path.stem} {at}={new!r}", out):
                valid += 1
            else:
                invalid += 1
    assert not out, "\n".join(out[:20])
    assert valid > 50 and invalid > 200, (valid, invalid)
