"""Unknown properties are ignored (runtime-spec config.md, "Extensibility":
runtimes MUST NOT generate an error for an unknown property and MUST
otherwise ignore it).

The generated validator's ``strip_unknown`` removes every key an object
schema does not list, at any depth, and returns the JSON paths; the loader
names each with --debug.  Keys of maps (annotations, sysctl, unified,
netDevices, timeOffsets, rdma) are data, never "unknown"."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pyoci import report
from pyoci.spec import _validator, schemagen
from pyoci.spec.load import load_process, load_resources, parse_config

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "spec-fixtures"
SCHEMA = json.loads((FIXTURES / "schema" / schemagen.SCHEMA_FILE).read_text())
GOOD = sorted((FIXTURES / "config" / "good").glob("*.json"))
EXTRA = {"nested": [1, {"deep": True}], "memory": {"limit": 1}}


def _deref(schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _key(k: str) -> str:
    return "." + k if k.isidentifier() else "['" + k.replace("\\", "\\\\").replace("'", "\\'") + "']"


def inject(doc: Any, schema: Any, path: str, out: list[str]) -> None:
    """Add an unknown property to every object whose schema lists properties."""
    schema = _deref(schema)
    if not isinstance(schema, dict):
        return
    if isinstance(doc, dict):
        props = dict(schema.get("properties") or {})
        for branch in schema.get("anyOf") or []:
            props.update(branch.get("properties") or {})
        extra = schema.get("additionalProperties", True)
        for k, v in list(doc.items()):
            if k in props:
                inject(v, props[k], path + _key(k), out)
            elif isinstance(extra, dict):
                inject(v, extra, path + _key(k), out)
        if props and extra is True:
            name = f"x-pyoci-test-{len(out)}"
            doc[name] = copy.deepcopy(EXTRA)
            out.append(path + _key(name))
    elif isinstance(doc, list) and "items" in schema:
        for i, v in enumerate(doc):
            inject(v, schema["items"], f"{path}[{i}]", out)


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_unknown_properties_everywhere_are_ignored(path: Path) -> None:
    expected = parse_config(path.read_bytes())
    doc = json.loads(path.read_bytes())
    injected: list[str] = []
    inject(doc, SCHEMA, "$", injected)
    assert len(injected) > 3
    assert parse_config(json.dumps(doc)) == expected
    again = json.loads(path.read_bytes())
    inject(again, SCHEMA, "$", [])
    ignored = _validator.strip_unknown(again)
    assert set(injected) <= set(ignored)
    assert again == expected


def test_unknown_keys_under_linux_resources_are_ignored() -> None:
    """The issue's example: runc (Go's encoding/json) ignores them; pyoci refused them."""
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    doc.setdefault("linux", {})["resources"] = {
        "memory": {"limit": 1 << 30, "limt": 5}, "cpuz": {"x": 1}, "pids": {"limit": 10, "max": 3},
    }
    cfg = parse_config(json.dumps(doc))
    assert cfg["linux"]["resources"] == {"memory": {"limit": 1 << 30}, "pids": {"limit": 10}}


def test_map_keys_are_data_not_unknown_properties() -> None:
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    doc["annotations"] = {"any.key": "v"}
    linux = doc.setdefault("linux", {})
    linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    linux["resources"] = {"unified": {"memory.high": "1"}, "rdma": {"mlx5_0": {"hcaHandles": 1}}}
    linux["netDevices"] = {"eth0": {"name": "x", "addresses": ["10.0.0.1/24"]}}
    before = copy.deepcopy(doc)
    assert _validator.strip_unknown(doc) == ["$.linux.netDevices.eth0.addresses"]
    del before["linux"]["netDevices"]["eth0"]["addresses"]
    assert doc == before


def test_debug_names_each_ignored_path(capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())
    doc["vendorThing"] = 1
    doc["process"]["user"]["newField"] = [1]
    report.configure(None, "text", True)
    try:
        parse_config(json.dumps(doc))
    finally:
        report.configure(None, "text", False)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "ignoring unknown property" in line]
    assert len(lines) == 2, err
    assert "$.vendorThing" in lines[0] and "$.process.user.newField" in lines[1]
    parse_config(json.dumps(doc))
    assert capsys.readouterr().err == ""       # without --debug: silent


def test_exec_process_and_update_resources_documents(tmp_path: Path) -> None:
    proc = json.loads((FIXTURES / "config" / "good" / "minimal.json").read_bytes())["process"]
    proc["futureField"] = {"a": 1}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    assert "futureField" not in load_process(str(tmp_path / "p.json"))
    (tmp_path / "r.json").write_text(json.dumps({"memory": {"limit": 5, "newKnob": 1}, "gpu": {}}))
    assert load_resources(str(tmp_path / "r.json")) == {"memory": {"limit": 5}}


def test_generator_strips_only_listed_objects(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "integer"}}},
            "m": {"type": "object", "additionalProperties": {"$ref": "#/$defs/Item"}},
            "l": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
            "closed": {"type": "object", "properties": {"c": {"type": "integer"}},
                       "additionalProperties": False},
        },
        "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "string"}}}},
    }
    (tmp_path / schemagen.SCHEMA_FILE).write_text(json.dumps(schema))
    ns: dict[str, Any] = {}
    exec(compile(schemagen.generate(str(tmp_path)), "<generated>", "exec"), ns)
    doc = {"a": {"b": 1, "z": 2}, "m": {"k y": {"n": "x", "q": 1}}, "l": [{"n": "x"}, {"r": 1}],
           "closed": {"c": 1}, "top": True}
    assert ns["strip_unknown"](doc) == ["$.top", "$.a.z", "$.m['k y'].q", "$.l[1].r"]
    assert doc == {"a": {"b": 1}, "m": {"k y": {"n": "x"}}, "l": [{"n": "x"}, {}], "closed": {"c": 1}}
    assert ns["strip_unknown"](doc) == []
