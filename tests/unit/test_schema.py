"""config.json validation: schema, generated validator, semantic checks, loader.

The JSON Schema in spec-fixtures/schema is the reference; the real jsonschema
library is the oracle the generated validator (pyoci.spec._validator) must
agree with.  pyoci's one deliberate difference: an integral float (1.0) is not
an integer, so the oracle gets the same strict "integer" type.
"""

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

import jsonschema
import pytest

from pyoci.errors import ConfigError, PyociError
from pyoci.spec import _validator, checks, schemagen
from pyoci.spec.load import load_config, load_process, load_resources, parse_config

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "spec-fixtures"
SCHEMA_DIR = FIXTURES / "schema"
SCHEMA = json.loads((SCHEMA_DIR / schemagen.SCHEMA_FILE).read_text())
GOOD = sorted((FIXTURES / "config" / "good").glob("*.json"))
BAD = sorted((FIXTURES / "config" / "bad").glob("*.json"))
GOOD_PROCESS = sorted((FIXTURES / "process" / "good").glob("*.json"))
GOOD_RESOURCES = sorted((FIXTURES / "resources" / "good").glob("*.json"))


def _strict_integer(_checker: object, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_Draft = jsonschema.Draft202012Validator
_StrictDraft = jsonschema.validators.extend(
    _Draft, type_checker=_Draft.TYPE_CHECKER.redefine("integer", _strict_integer)
)
ORACLE = _StrictDraft(SCHEMA)
PLAIN_ORACLE = _Draft(SCHEMA)


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _expectation(bad: Path) -> tuple[str, str]:
    lines = bad.with_suffix(".expect").read_text().splitlines()
    kind = lines[1].split(":", 1)[1].strip() if len(lines) > 1 else "schema"
    return lines[0].strip(), kind


# -- the schema and the fixtures ---------------------------------------------


def test_schema_is_valid_draft_2020_12() -> None:
    _Draft.check_schema(SCHEMA)


def test_fixture_sets_are_complete() -> None:
    names = {p.stem for p in GOOD}
    for version in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
        assert f"spec-{version}" in names
    assert {"minimal", "full", "runc-spec-rootless"} <= names
    assert sum(1 for n in names if n.startswith("podman-")) >= 20
    shared = REPO.parent / "shared" / "podman-configs"
    if shared.is_dir():
        for src in shared.glob("*.config.json"):
            copy_ = FIXTURES / "config" / "good" / f"podman-{src.name[: -len('.config.json')]}.json"
            assert copy_.read_bytes() == src.read_bytes(), f"{copy_.name} differs from shared/{src.name}"
    for bad in BAD:
        assert bad.with_suffix(".expect").is_file(), f"{bad.name} has no .expect"


@pytest.mark.parametrize("path", GOOD, ids=_ids(GOOD))
def test_good_fixture_passes_jsonschema(path: Path) -> None:
    doc = json.loads(path.read_bytes())
    PLAIN_ORACLE.validate(doc)
    ORACLE.validate(doc)


@pytest.mark.parametrize("path", GOOD, ids=_ids(GOOD))
def test_good_fixture_passes_pyoci(path: Path) -> None:
    """Parsed as written, less the extension fields (unknown properties,
    which the runtime-spec says to ignore: pyoci removes them)."""
    doc = parse_config(path.read_bytes())
    original = json.loads(path.read_bytes())
    ignored = _validator.strip_unknown(original)
    assert doc == original
    assert ignored == IGNORED.get(path.stem, [])


# The extension fields of the good fixtures (full.json carries some on purpose).
IGNORED = {"full": ["$['org.example.extension']", "$.process['org.example.unknownField']"]}


@pytest.mark.parametrize("path", BAD, ids=_ids(BAD))
def test_bad_fixture_fails_at_expected_path(path: Path) -> None:
    expected, kind = _expectation(path)
    with pytest.raises(ConfigError) as info:
        parse_config(path.read_bytes())
    assert info.value.field == expected, str(info.value)
    assert str(info.value).startswith(f"config.json {expected}: ")
    if kind == "load":
        return
    doc = json.loads(path.read_bytes())
    if kind == "schema":
        assert not ORACLE.is_valid(doc), "jsonschema accepts a fixture marked as a schema failure"
    else:
        assert kind == "check"
        assert ORACLE.is_valid(doc), "jsonschema rejects a fixture marked as a semantic failure"
        _validator.validate(doc)


def test_bad_fixtures_cover_every_check() -> None:
    """Each semantic check fails at least one bad fixture (or a direct test below)."""
    hit: set[str] = set()
    for path in BAD:
        if _expectation(path)[1] != "check":
            continue
        doc = json.loads(path.read_bytes())
        for check in checks.CHECKS:
            try:
                check(doc)
            except ConfigError:
                hit.add(check.__name__)
                break
    tested_directly = {"check_namespace_types"}  # the schema's enum catches these first
    missing = {c.__name__ for c in checks.CHECKS} - hit - tested_directly
    assert not missing


# -- checks the schema makes unreachable through load_config -----------------


def _minimal() -> dict[str, Any]:
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    assert isinstance(doc, dict)
    return doc


def test_check_namespace_types_unknown() -> None:
    doc = _minimal()
    doc["linux"] = {"namespaces": [{"type": "pid"}, {"type": "net"}]}
    with pytest.raises(ConfigError) as info:
        checks.check_namespace_types(doc)
    assert info.value.field == "$.linux.namespaces[1].type"


def test_check_devices_type() -> None:
    doc = _minimal()
    doc["linux"] = {"devices": [{"type": "x", "path": "/dev/x"}]}
    with pytest.raises(ConfigError) as info:
        checks.check_devices(doc)
    assert info.value.field == "$.linux.devices[0].type"


def test_user_namespace_joined_by_path_needs_no_mappings() -> None:
    doc = _minimal()
    doc["linux"] = {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}
    checks.check_config(doc)


def test_relative_mount_destination_is_accepted() -> None:
    doc = _minimal()
    doc["mounts"] = [{"destination": "data", "type": "tmpfs", "source": "tmpfs"}]
    checks.check_config(doc)


def test_check_config_runs_all_checks() -> None:
    assert len(checks.CHECKS) == len({c.__name__ for c in checks.CHECKS})
    checks.check_config(_minimal())


# -- loader ------------------------------------------------------------------


def test_load_config_from_bundle(tmp_path: Path) -> None:
    src = FIXTURES / "config" / "good" / "full.json"
    (tmp_path / "config.json").write_bytes(src.read_bytes())
    expected = json.loads(src.read_bytes())
    _validator.strip_unknown(expected)
    assert load_config(str(tmp_path)) == expected


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PyociError) as info:
        load_config(str(tmp_path))
    err = info.value
    assert not isinstance(err, ConfigError)
    assert err.path == str(tmp_path / "config.json")
    assert str(tmp_path / "config.json") in str(err)
    assert "No such file or directory" in str(err)


def test_load_config_unreadable(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(PyociError) as info:
        load_config(str(tmp_path))
    assert "a directory, not a regular file" in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (b"", "line 1 column 1"),
        (b'{"ociVersion": "1.0.0"', "line 1 column 23"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b'{"ociVersion": "1.0.0", "x": Infinity}', "Infinity"),
    ],
)
def test_parse_errors(text: bytes, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert info.value.field == "$"
    assert "not valid JSON" in str(info.value)
    assert needle in str(info.value)


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.1.0-rc.3", "1.2.1", "1.3.0+dev", "1.3.10"])
def test_supported_versions(version: str) -> None:
    doc = _minimal()
    doc["ociVersion"] = version
    parse_config(json.dumps(doc))


@pytest.mark.parametrize("version", ["0.5.0", "1.4.0", "2.0.0", "1.0", "1", "v1.0.0", "1.00.0", "", "1.0.0 "])
def test_unsupported_versions(version: str) -> None:
    doc = _minimal()
    doc["ociVersion"] = version
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc))
    assert info.value.field == "$.ociVersion"
    assert not ORACLE.is_valid(doc)


@pytest.mark.parametrize("path", GOOD_PROCESS, ids=_ids(GOOD_PROCESS))
def test_process_files(path: Path) -> None:
    doc = load_process(str(path))
    assert doc["args"]
    _StrictDraft(SCHEMA["$defs"]["Process"] | {"$defs": SCHEMA["$defs"]}).validate(doc)


def test_process_file_errors_are_rooted_at_dollar(tmp_path: Path) -> None:
    proc = tmp_path / "process.json"
    proc.write_text(json.dumps({"args": ["sh"], "cwd": "tmp", "user": {"uid": 0, "gid": 0}}))
    with pytest.raises(ConfigError) as info:
        load_process(str(proc))
    assert info.value.field == "$.cwd"
    proc.write_text(json.dumps({"args": ["sh"], "cwd": "/", "user": {"uid": -1, "gid": 0}}))
    with pytest.raises(ConfigError) as info:
        load_process(str(proc))
    assert info.value.field == "$.user.uid"


@pytest.mark.parametrize("path", GOOD_RESOURCES, ids=_ids(GOOD_RESOURCES))
def test_resources_files(path: Path) -> None:
    load_resources(str(path))


def test_resources_file_error(tmp_path: Path) -> None:
    res = tmp_path / "resources.json"
    res.write_text(json.dumps({"memory": {"limit": "1G"}}))
    with pytest.raises(ConfigError) as info:
        load_resources(str(res))
    assert info.value.field == "$.memory.limit"


# -- mutation test: the generated validator agrees with jsonschema -----------

_Pointer = tuple[str | int, ...]


def _walk(node: Any, at: _Pointer = ()) -> Iterator[tuple[_Pointer, Any]]:
    yield at, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*at, i))


_REMOVE = object()


def _replacements(value: Any) -> list[Any]:
    """Deterministic wrong (and some right) values to put where *value* was."""
    if isinstance(value, bool):
        return ["true", 1, None, not value]
    if isinstance(value, int):
        return [-1, 2**32, 2**64, -(2**63) - 1, 1.5, float(value), True, str(value), 0]
    if isinstance(value, str):
        return [1, None, "", "NOT_A_VALID_NAME", [value], value + "x"]
    if isinstance(value, list):
        return [{}, "x", [], [None], [*value, 7], None]
    if isinstance(value, dict):
        return [[], "x", None, {}]
    return ["x", 0]


def _mutations(doc: Any) -> list[tuple[_Pointer, Any]]:
    out: list[tuple[_Pointer, Any]] = []
    for at, value in _walk(doc):
        if not at:
            continue
        for new in _replacements(value):
            out.append((at, new))
        if isinstance(at[-1], str):
            out.append((at, _REMOVE))
    return out


def _apply(doc: Any, at: _Pointer, new: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for step in at[:-1]:
        parent = parent[step]
    if new is _REMOVE:
        del parent[at[-1]]
    else:
        parent[at[-1]] = new
    return doc


def _json_path(steps: Any) -> str:
    text = "$"
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        elif step.isidentifier():
            text += "." + step
        else:
            text += "['" + step.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return text


def _oracle_paths(errors: list[jsonschema.ValidationError]) -> set[str]:
    """Paths at which jsonschema reports an error, as pyoci would name them."""
    paths: set[str] = set()
    for err in errors:
        base = list(err.absolute_path)
        paths.add(_json_path(base))
        if err.validator == "required":
            paths.update(_json_path([*base, k]) for k in err.validator_value if k not in err.instance)
        elif err.validator == "dependentRequired":
            paths.update(_json_path([*base, k]) for deps in err.validator_value.values() for k in deps)
        elif "propertyNames" in err.schema_path:
            paths.add(_json_path([*base, err.instance]))
        elif err.validator in ("anyOf", "additionalProperties"):
            paths.update(_json_path([*base, *e.absolute_path]) for e in err.context or ())
    return paths


def _sample_mutations() -> list[tuple[str, _Pointer, Any]]:
    """250 mutations of full.json (it has every field) and 150 of the other good fixtures."""
    rng = random.Random(20240611)
    full: list[tuple[str, _Pointer, Any]] = []
    rest: list[tuple[str, _Pointer, Any]] = []
    for path in GOOD:
        doc = json.loads(path.read_bytes())
        for at, new in _mutations(doc):
            # The 400-entry seccomp name lists would crowd out everything else.
            if "names" in at and isinstance(at[-1], int) and at[-1] > 2:
                continue
            (full if path.stem == "full" else rest).append((path.stem, at, new))
    return rng.sample(full, 250) + rng.sample(rest, 150)


MUTATIONS = _sample_mutations()


def test_mutations_agree_with_jsonschema() -> None:
    docs = {path.stem: json.loads(path.read_bytes()) for path in GOOD}
    disagreements = []
    failures = 0
    for name, at, new in MUTATIONS:
        doc = _apply(docs[name], at, new)
        oracle_errors = list(ORACLE.iter_errors(doc))
        oracle_ok = not oracle_errors
        what = f"{name} {_json_path(at)}={new!r}"
        try:
            _validator.validate(doc)
        except ConfigError as err:
            failures += 1
            if oracle_ok:
                disagreements.append(f"{what}: pyoci rejects ({err}), jsonschema accepts")
            elif err.field not in (where := _oracle_paths(oracle_errors)):
                disagreements.append(f"{what}: pyoci says {err.field}, jsonschema {where}")
        else:
            if not oracle_ok:
                disagreements.append(f"{what}: pyoci accepts, jsonschema rejects")
    assert not disagreements, "\n".join(disagreements[:20])
    # The sample must exercise both outcomes substantially.
    assert 100 < failures < len(MUTATIONS) - 20


# -- the generator -----------------------------------------------------------


def test_generated_validator_is_up_to_date(tmp_path: Path) -> None:
    committed = (REPO / "pyoci" / "spec" / "_validator.py").read_text(encoding="utf-8")
    assert schemagen.generate(str(SCHEMA_DIR)) == committed, (
        "pyoci/spec/_validator.py is stale: run python -m pyoci.spec.schemagen spec-fixtures/schema "
        "pyoci/spec/_validator.py"
    )
    out = tmp_path / "_validator.py"
    subprocess.run(
        [sys.executable, "-m", "pyoci.spec.schemagen", str(SCHEMA_DIR), str(out)],
        cwd=REPO,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.read_bytes() == (REPO / "pyoci" / "spec" / "_validator.py").read_bytes()


def _write_schema(tmp_path: Path, schema: dict[str, Any]) -> str:
    (tmp_path / schemagen.SCHEMA_FILE).write_text(json.dumps(schema))
    return str(tmp_path)


def test_generator_refuses_unknown_keywords(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}}
    schema_dir = _write_schema(tmp_path, schema)
    with pytest.raises(schemagen.SchemaError, match="oneOf"):
        schemagen.generate(schema_dir)


def test_generator_small_schema(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["a"],
        "properties": {"a": {"type": "integer", "minimum": 2}},
        "additionalProperties": False,
        "$defs": {"Thing": {"x-pyoci-export": "validate_thing", "type": "string", "const": "yes"}},
    }
    namespace: dict[str, Any] = {}
    exec(compile(schemagen.generate(_write_schema(tmp_path, schema)), "<generated>", "exec"), namespace)
    validate = namespace["validate"]
    validate({"a": 2})
    for doc, field, message in [
        ([], "$", "must be an object, not an array"),
        ({}, "$.a", "is required"),
        ({"a": 1}, "$.a", "must be at least 2, not 1"),
        ({"a": 2, "b.c": 1}, "$['b.c']", "is not allowed here"),
    ]:
        with pytest.raises(ConfigError) as info:
            validate(doc)
        assert (info.value.field, str(info.value)) == (field, f"config.json {field}: {message}")
    namespace["validate_thing"]("yes")
    with pytest.raises(ConfigError, match='must be "yes", not "no"'):
        namespace["validate_thing"]("no")


# -- import cost -------------------------------------------------------------


def _imported_modules(statement: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return [line.rsplit("|", 1)[1].strip() for line in lines]


def test_load_does_not_import_jsonschema() -> None:
    modules = _imported_modules("import pyoci.spec.load")
    assert "pyoci.spec._validator" in modules
    assert not [m for m in modules if m.split(".")[0] == "jsonschema"]
    # Nothing heavy beyond pyoci's own modules (typing alone costs ~4 ms, json ~10 ms;
    # test_import_cost.py runs load_config in a bare interpreter).
    extra = set(modules) - set(_imported_modules("pass"))
    assert not extra & {"typing", "pyoci.spec.schemagen", "dataclasses", "hashlib", "json", "re", "enum"}
