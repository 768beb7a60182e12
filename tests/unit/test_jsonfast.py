"""pyoci.jsonfast gives exactly json's results, values and errors, without importing json."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from decimal import Decimal
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from pyoci import jsonfast

REPO = Path(__file__).resolve().parents[2]
FIXTURES = sorted((REPO / "spec-fixtures").rglob("*.json"))
CONFIGS = sorted((REPO / "spec-fixtures" / "config").rglob("*.json"))
INDENTS = (0, 1, 2, 4, -1)


def _canon(value: Any) -> Any:
    """A form of a decoded value that == compares exactly: types, NaN, key order, duplicates."""
    if isinstance(value, dict):
        return ("dict", [(_canon(k), _canon(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [_canon(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def _outcome(call: Any, *args: Any, **kwargs: Any) -> Any:
    """What call(*args) gave: the canonical value, or the exception's type, text and fields."""
    try:
        value = call(*args, **kwargs)
    except (ValueError, TypeError, RecursionError) as exc:
        fields = tuple(getattr(exc, name, None) for name in ("msg", "pos", "lineno", "colno", "start", "end"))
        return ("raised", type(exc), str(exc), fields)
    return ("value", _canon(value) if not isinstance(value, str) else value)


def _same_loads(data: Any, **kwargs: Any) -> Any:
    want = _outcome(json.loads, data, **kwargs)
    got = _outcome(jsonfast.loads, data, **kwargs)
    assert got == want, f"{data[:200]!r}: jsonfast {got[:3]} json {want[:3]}"
    return want


def _same_dumps(obj: Any) -> None:
    assert _outcome(jsonfast.dumps, obj) == _outcome(json.dumps, obj, separators=(",", ":"))
    for indent in INDENTS:
        want = _outcome(json.dumps, obj, indent=indent)
        assert _outcome(jsonfast.dumps, obj, indent=indent) == want, f"indent={indent}"


# -- loads: documents ---------------------------------------------------------


@pytest.mark.parametrize("path", FIXTURES, ids=[str(p.relative_to(REPO / "spec-fixtures")) for p in FIXTURES])
def test_fixture_loads_and_dumps_like_json(path: Path) -> None:
    raw = path.read_bytes()
    outcome = _same_loads(raw)
    _same_loads(raw.decode())
    _same_loads(bytearray(raw))
    if outcome[0] == "raised":
        assert path.stem == "not-json"
        return
    doc = json.loads(raw)
    _same_dumps(doc)
    assert _canon(jsonfast.loads(jsonfast.dumps(doc))) == _canon(doc)
    assert _canon(jsonfast.loads(jsonfast.dumps(doc, indent=2))) == _canon(doc)


@pytest.mark.parametrize(
    "text",
    [
        "", " ", "\n", "0", "-0", "-0.0", "1.5e3", "1E-3", "1e400", "-1e400", "12345678901234567890123",
        "1.", ".5", "01", "-", "--1", "+1", "1e", "1e+", "0x10", "1_000",
        "NaN", "Infinity", "-Infinity", "-NaN", "nan", "inf", "[NaN, Infinity, -Infinity]", "Infinityx",
        "true", "false", "null", "True", "nul", "tru", "nullx", "[true false]",
        '""', '"abc"', '"\\u00e9\\ud83d\\ude00"', '"\\ud800"', '"\\udc00\\ud800"', '"\\x"', '"\\u12"',
        '"\\u12G4"', '"unterminated', '"tab\there"', '"nl\nhere"', '"\x00"', '"\x7f"', '"é"',
        '"\\/\\b\\f\\n\\r\\t\\"\\\\"',
        "[]", "[ ]", "[1,]", "[,1]", "[1 2]", "[1,,2]", "[", "]", "[[[[]]]]", "[1, [2, [3, {}]]]",
        "{}", "{ }", '{"a":1}', '{"a":1,}', '{"a" 1}', "{1:2}", '{"a":}', '{"a"', "{", "}", '{"a":1 "b":2}',
        '{"a":1,"a":2}', '{"": null}', '{"a": {"b": {"c": []}}}',
        " 1 ", "\t\r\n[1]\n\r\t", "1 2", "[] []", "{} x", "1\x0c", "\x0c1", "\u00a01", "1\u00a0", "\u20281",
        "\ufeff1", "\ufeff", "1\ufeff", "// comment\n1", "'a'", "[1]\x00",
    ],
)
def test_documents_and_errors(text: str) -> None:
    _same_loads(text)
    _same_loads(text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize(
    "data",
    [
        b"", b"\xff", b"\xc3", b"\xc3(", b'"\xff"', b"[1, \xed\xa0\x80]", b'"\xed\xa0\x80"', b"\x00",
        b"\x001", b"1\x00", b"\x00\x00\x001", b"1\x00\x00\x00", b"\x001\x00\x00", b"\xef\xbb\xbf[1]",
        b"\xef\xbb\xbf", b"\xfe\xff\x00[\x00]", b"\xff\xfe[\x00]\x00", b"\xfe\xff\x00",
        b"\x00\x00\xfe\xff\x00\x00\x00[\x00\x00\x00]", b"\xff\xfe\x00\x00[\x00\x00\x00]\x00\x00\x00",
    ],
)
def test_bytes_and_encodings(data: bytes) -> None:
    _same_loads(data)
    _same_loads(bytearray(data))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le",
                                      "utf-32-be"])
def test_encoded_fixture(encoding: str) -> None:
    text = (REPO / "spec-fixtures" / "config" / "good" / "full.json").read_text()
    assert _same_loads(text.encode(encoding))[0] == "value"
    assert _same_loads(('"\u00e9\U0001f600"  ').encode(encoding))[0] == "value"


def test_not_text() -> None:
    for data in (None, 1, [b"{}"], memoryview(b"{}")):
        assert _same_loads(data)[1] is TypeError


def test_deep_nesting() -> None:
    assert _same_loads("[" * 100_000 + "]" * 100_000)[1] is RecursionError
    assert _same_loads('{"a":' * 100_000)[1] is RecursionError
    deep = "[" * 200 + "]" * 200
    assert _same_loads(deep)[0] == "value"


def test_hooks() -> None:
    text = '{"a": 1.10, "b": [2, NaN, -Infinity], "c": {"d": 3}, "a": "dup"}'
    _same_loads(text, parse_float=Decimal)
    _same_loads(text, parse_int=float)
    _same_loads(text, parse_int=str, parse_float=str, parse_constant=str)
    _same_loads(text, object_hook=lambda d: sorted(d.items()))
    _same_loads(text, object_pairs_hook=list)
    _same_loads(text, object_pairs_hook=list, object_hook=dict.keys)
    _same_loads('["a\tb\n\x00"]', strict=False)
    _same_loads('["a\tb\n\x00"]', strict=True)
    _same_loads('"\x1f"', strict=0)

    def reject(name: str) -> None:
        raise LookupError(name)

    with pytest.raises(LookupError, match="Infinity"):
        jsonfast.loads("[1, Infinity]", parse_constant=reject)


def test_constants_are_json_s() -> None:
    value = jsonfast.loads("[NaN, Infinity, -Infinity]")
    assert math.isnan(value[0]) and value[1] == math.inf and value[2] == -math.inf


# -- loads: fuzzing -----------------------------------------------------------

_NOISE = '{}[]",:0123456789.eE+-tfnrlsuaNIy \t\n\r\x0c\\/\x00\x1f\u00e9\u2028\ufeff'


def _mutate(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    op = rng.randrange(6)
    if op == 0:
        return text[:i] + text[i + 1 :]
    if op == 1:
        return text[:i] + rng.choice(_NOISE) + text[i:]
    if op == 2:
        return text[:i] + rng.choice(_NOISE) + text[i + 1 :]
    if op == 3:
        return text[:i]
    if op == 4:
        j = rng.randrange(len(text) + 1)
        return text[:i] + text[min(i, j) : max(i, j)] + text[i:]
    return text[i:]


def test_fuzz_mutated_fixtures() -> None:
    rng = random.Random(20250611)
    outcomes = {"value": 0, "raised": 0}
    for path in CONFIGS:
        text = path.read_text()
        # Small documents whole; the big ones (full.json, seccomp lists) cut down.
        if len(text) > 4000:
            start = rng.randrange(len(text) - 4000)
            text = text[start : start + 4000]
        for _ in range(25):
            mutated = text
            for _ in range(rng.randrange(1, 4)):
                mutated = _mutate(rng, mutated)
            outcomes[_same_loads(mutated)[0]] += 1
            data = mutated.encode("utf-8", "surrogatepass")
            if rng.random() < 0.2:
                k = rng.randrange(len(data) + 1)
                data = data[:k] + bytes([rng.randrange(256)]) + data[k:]
            _same_loads(data)
    assert outcomes["raised"] > 1000
    assert outcomes["value"] > 50


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 7, 2**63, -(2**64) - 3, 10**30, rng.randrange(-(10**6), 10**6)])
    if kind == 3:
        floats = [0.0, -0.0, 0.1, 1e300, -2.5e-300, 1e16, math.inf, -math.inf, math.nan, rng.random()]
        return rng.choice(floats)
    if kind in (4, 5, 6):
        alphabet = 'ab "\\/\n\t\x00\x1f\x7f\u00e9\u2028\ud800\udfff\U0001f600'
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
    if kind in (7, 8):
        items = [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        return tuple(items) if rng.random() < 0.2 else items
    out: dict[Any, Any] = {}
    for _ in range(rng.randrange(4)):
        key = rng.choice(["k", "", "\u00e9", "a b", 1, -2, 1.5, math.nan, True, False, None])
        out[key] = _random_value(rng, depth + 1)
    return out


def test_fuzz_random_values() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        value = _random_value(rng)
        _same_dumps(value)
        _same_loads(jsonfast.dumps(value))
        _same_loads(jsonfast.dumps(value, indent=rng.choice(INDENTS)))


# -- dumps ------------------------------------------------------------------


class _Color(IntEnum):
    RED = 1


class _Float(float):
    def __repr__(self) -> str:
        return "nope"


class _Str(str):
    pass


@pytest.mark.parametrize(
    "obj",
    [
        None, True, False, 0, -5, 2**100, 1.0, -0.0, 1e-7, 1e22, 1.7e308, -1.7e308,
        math.inf, -math.inf, math.nan,
        "", "plain", 'q"uo\\te', "\x00\x1f\x7f", "\u00e9\u2028\U0001f600", "\ud800", _Str("sub"),
        [], (), {}, [[]], [{}], {"a": []}, {"a": {}}, (1, (2, (3,))), [1, "two", None, [True, {"x": 2.5}]],
        {"b": 1, "a": 2}, {1: "int", 2.5: "float", None: "none"}, {True: "bool"}, {False: 0},
        {-0.0: 1, math.inf: 2, -math.inf: 3, math.nan: 4},
        _Color.RED, [_Color.RED], {_Color.RED: _Color.RED}, _Float(2.5), {"f": _Float(1.5)}, {_Float(0.5): 1},
    ],
)
def test_dumps_like_json(obj: Any) -> None:
    _same_dumps(obj)


@pytest.mark.parametrize(
    "obj",
    [
        object(), [1, object()], {"a": {1, 2}}, {(1, 2): "tuple key"}, {"a": 1, b"b": 2}, [Decimal("1.5")],
        b"bytes", {"a": [1, 2, {frozenset(): 1}]},
    ],
)
def test_dumps_errors_like_json(obj: Any) -> None:
    assert _outcome(json.dumps, obj)[0] == "raised"
    _same_dumps(obj)


def test_dumps_circular() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    cycle: dict[str, Any] = {}
    cycle["self"] = [cycle]
    for obj in (loop, cycle, {"x": loop}):
        _same_dumps(obj)
        with pytest.raises(ValueError, match="Circular reference detected"):
            jsonfast.dumps(obj, indent=2)
    shared = [1]
    _same_dumps([shared, shared, {"a": shared}])  # the same object twice is not a cycle


def test_dumps_compact_and_indented_forms() -> None:
    doc = {"a": [1, {"b": None}], "c": "\u00e9"}
    assert jsonfast.dumps(doc) == '{"a":[1,{"b":null}],"c":"\\u00e9"}'
    assert jsonfast.dumps(doc, indent=2) == (
        '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ],\n  "c": "\\u00e9"\n}'
    )
    assert jsonfast.dumps("x") == '"x"'


# -- the light path -----------------------------------------------------------

_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pyoci import jsonfast
heavy = ("re", "enum", "json", "typing", "functools", "collections")
assert not [m for m in sys.modules if m.split(".")[0] in heavy], sorted(sys.modules)
assert jsonfast.loads(b' {"a": [1, 2.5, null, true, "\\u00e9"]} \n') == {"a": [1, 2.5, None, True, "\u00e9"]}
assert jsonfast.dumps({"a": [1]}) == '{"a":[1]}' and jsonfast.dumps([1], indent=1) == "[\n 1\n]"
assert not [m for m in sys.modules if m.split(".")[0] in heavy], sorted(sys.modules)
errors = [('{"a" 1}', "Expecting ':' delimiter", 5), ("[1,\n", "Expecting value", 4),
          ("1 2", "Extra data", 2), ('"\\ud800\\x"', "Invalid \\escape", 7), ("", "Expecting value", 0)]
for text, msg, pos in errors:
    try:
        jsonfast.loads(text)
    except ValueError as exc:
        assert type(exc).__module__ == "json.decoder" and type(exc).__name__ == "JSONDecodeError", repr(exc)
        assert (exc.msg, exc.pos) == (msg, pos), (text, exc.msg, exc.pos)
        assert isinstance(exc, jsonfast.JSONDecodeError)
    else:
        raise AssertionError(text)
print("ok")
"""


def test_light_path_in_a_fresh_interpreter() -> None:
    """No json/re on success; on failure the real JSONDecodeError even though json wasn't imported."""
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _CHILD, str(REPO)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr


def _import_times(statement: str) -> dict[str, tuple[int, int]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-X", "importtime", "-c",
         f"import sys; sys.path.insert(0, {str(REPO)!r}); " + statement],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    times = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            self_us, cumulative_us, name = line[len("import time:") :].split("|")
            times[name.strip()] = (int(self_us), int(cumulative_us))
    return times


def test_import_is_light() -> None:
    times = _import_times("import pyoci.jsonfast")
    assert not {name.split(".")[0] for name in times} & {"re", "enum", "json", "typing", "functools"}
    # Its own code (not _json's shared library) well under half a millisecond;
    # the least of a few runs, to ignore a busy machine.
    best = min(_import_times("import pyoci.jsonfast")["pyoci.jsonfast"][0] for _ in range(5))
    assert best < 500, f"importing pyoci.jsonfast took {best} us"
