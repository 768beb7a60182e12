"""JSON without ``import json``: :mod:`json`'s results from its C accelerator ``_json``.

``import json`` costs ~10 ms because json.decoder and json.scanner import
``re``, which imports ``enum``, ``functools`` and ``collections``.  pyoci reads
config.json on the start-up path of ``create`` and ``run``, so this module calls
the C scanner and encoder that :mod:`json` itself uses and imports only ``_json``
and ``sys`` (CPython only).  Importing it costs ~0.1 ms plus the loading of
``_json``'s shared library.

``loads(data, *, strict=True, object_hook=None, object_pairs_hook=None,
parse_float=None, parse_int=None, parse_constant=None)``
    Exactly :func:`json.loads`: the same value for every document and the same
    exceptions.  Invalid JSON raises :class:`json.JSONDecodeError` (a
    ValueError with ``msg``, ``lineno``, ``colno``, ``pos``); on that path only
    this module imports json.decoder, then scans the text a second time (hooks
    may see the objects before the error twice).  Bytes are decoded as
    json.loads does (UTF-8, -16 or -32 detected, "surrogatepass"); a BOM in a
    str is an error, NaN/Infinity/-Infinity are accepted unless
    *parse_constant* raises, and only `` \\t\\n\\r`` count as white space.

``dumps(obj, *, indent=None)``
    Without *indent*: compact, ``json.dumps(obj, separators=(",", ":"))``, NOT
    the ``", "``/``": "`` of a plain json.dumps (pyoci writes compact state
    files).  With an int *indent*: ``json.dumps(obj, indent=indent)``, whose
    separators are ``","`` and ``": "``.  ASCII-only output, NaN and infinities
    written as NaN/Infinity, keys in the dict's order, ValueError on circular
    references, TypeError for what JSON can't hold.

``JSONDecodeError``
    :class:`json.JSONDecodeError`, imported on first use (``except
    jsonfast.JSONDecodeError`` is only evaluated when something was raised).
"""

import _json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from json import JSONDecodeError as JSONDecodeError
    from typing import Any, NoReturn

__all__ = ["JSONDecodeError", "dumps", "loads"]

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
_INFINITY = float("inf")


class _Context:
    """What ``_json.make_scanner`` reads from a json.decoder.JSONDecoder."""

    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float", "parse_int", "parse_constant")

    def __init__(
        self,
        strict: bool,
        object_hook: "Callable[[dict[str, Any]], Any] | None",
        object_pairs_hook: "Callable[[list[tuple[str, Any]]], Any] | None",
        parse_float: "Callable[[str], Any] | None",
        parse_int: "Callable[[str], Any] | None",
        parse_constant: "Callable[[str], Any] | None",
    ) -> None:
        # The same defaulting as JSONDecoder.__init__ (``or``, not ``is None``).
        self.strict = strict
        self.object_hook = object_hook
        self.object_pairs_hook = object_pairs_hook
        self.parse_float = parse_float or float
        self.parse_int = parse_int or int
        self.parse_constant = parse_constant or _CONSTANTS.__getitem__


def _scanner(context: _Context) -> "Callable[[str, int], tuple[Any, int]]":
    # typeshed wants a make_scanner as the context; any object with the attributes will do.
    return _json.make_scanner(context)  # type: ignore[arg-type]


_SCAN = _scanner(_Context(True, None, None, None, None, None))


def __getattr__(name: str) -> "Any":
    if name == "JSONDecodeError":
        from json.decoder import JSONDecodeError

        return JSONDecodeError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _error(msg: str, doc: str, pos: int) -> ValueError:
    from json.decoder import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


def _detect_encoding(b: "bytes | bytearray") -> str:
    """json.detect_encoding: the encoding of a JSON text from its BOM or its first bytes' zeros."""
    if b.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        return "utf-32"
    if b.startswith((b"\xfe\xff", b"\xff\xfe")):
        return "utf-16"
    if b.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if len(b) >= 4:
        if not b[0]:
            return "utf-16-be" if b[1] else "utf-32-be"
        if not b[1]:
            return "utf-16-le" if b[2] or b[3] else "utf-32-le"
    elif len(b) == 2:
        if not b[0]:
            return "utf-16-be"
        if not b[1]:
            return "utf-16-le"
    return "utf-8"


def _decode(scan: "Callable[[str, int], tuple[Any, int]]", s: str) -> "Any":
    """JSONDecoder.decode: one value between optional white space."""
    n = len(s)
    idx = 0
    while idx < n and s[idx] in _WHITESPACE:
        idx += 1
    try:
        obj, end = scan(s, idx)
    except StopIteration as err:
        raise _error("Expecting value", s, err.value) from None
    while end < n and s[end] in _WHITESPACE:
        end += 1
    if end != n:
        raise _error("Extra data", s, end)
    return obj


def loads(
    data: "str | bytes | bytearray",
    *,
    strict: bool = True,
    object_hook: "Callable[[dict[str, Any]], Any] | None" = None,
    object_pairs_hook: "Callable[[list[tuple[str, Any]]], Any] | None" = None,
    parse_float: "Callable[[str], Any] | None" = None,
    parse_int: "Callable[[str], Any] | None" = None,
    parse_constant: "Callable[[str], Any] | None" = None,
) -> "Any":
    """Deserialize a JSON document, exactly as :func:`json.loads` does."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise _error("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        text = data
    elif isinstance(data, (bytes, bytearray)):
        text = data.decode(_detect_encoding(data), "surrogatepass")
    else:
        raise TypeError(f"the JSON object must be str, bytes or bytearray, not {data.__class__.__name__}")
    if (
        strict is True
        and object_hook is None
        and object_pairs_hook is None
        and parse_float is None
        and parse_int is None
        and parse_constant is None
    ):
        scan = _SCAN
    else:
        context = _Context(strict, object_hook, object_pairs_hook, parse_float, parse_int, parse_constant)
        scan = _scanner(context)
    try:
        return _decode(scan, text)
    except SystemError:
        # CPython 3.11's scanner builds its JSONDecodeError from the json.decoder
        # in sys.modules and, when there is none, fails with SystemError
        # ("returned NULL without setting an exception").  Import it and scan
        # again to raise the real error.
        if "json.decoder" in sys.modules:
            raise
    import json.decoder  # noqa: F401

    return _decode(scan, text)


def _default(o: object) -> "NoReturn":
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _floatstr(o: float) -> str:
    if o != o:
        return "NaN"
    if o == _INFINITY:
        return "Infinity"
    if o == -_INFINITY:
        return "-Infinity"
    return float.__repr__(o)


def dumps(obj: object, *, indent: "int | None" = None) -> str:
    """Serialize *obj*: compact (``","`` and ``":"``) or, with *indent*, as json.dumps(indent=...)."""
    if indent is None:
        encode = _json.make_encoder(
            {}, _default, _json.encode_basestring_ascii, None, ":", ",", False, False, True
        )
        return "".join(encode(obj, 0))
    out: list[str] = []
    _pretty(obj, " " * indent, 0, out, {})
    return "".join(out)


def _pretty(o: object, indent: str, level: int, out: list[str], markers: dict[int, object]) -> None:
    """json.encoder._make_iterencode with an indent and separators "," and ": "."""
    if isinstance(o, str):
        out.append(_json.encode_basestring_ascii(o))
    elif o is None:
        out.append("null")
    elif o is True:
        out.append("true")
    elif o is False:
        out.append("false")
    elif isinstance(o, int):
        out.append(int.__repr__(o))  # int subclasses (IntEnum) as plain numbers, like json
    elif isinstance(o, float):
        out.append(_floatstr(o))
    elif isinstance(o, (list, tuple)):
        if not o:
            out.append("[]")
            return
        marker = _mark(o, markers)
        level += 1
        newline = "\n" + indent * level
        out.append("[" + newline)
        separator = "," + newline
        first = True
        for value in o:
            if first:
                first = False
            else:
                out.append(separator)
            _pretty(value, indent, level, out, markers)
        out.append("\n" + indent * (level - 1) + "]")
        del markers[marker]
    elif isinstance(o, dict):
        if not o:
            out.append("{}")
            return
        marker = _mark(o, markers)
        level += 1
        newline = "\n" + indent * level
        out.append("{" + newline)
        separator = "," + newline
        first = True
        for key, value in o.items():
            if isinstance(key, str):
                pass
            elif isinstance(key, float):
                key = _floatstr(key)
            elif key is True:
                key = "true"
            elif key is False:
                key = "false"
            elif key is None:
                key = "null"
            elif isinstance(key, int):
                key = int.__repr__(key)
            else:
                raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")
            if first:
                first = False
            else:
                out.append(separator)
            out.append(_json.encode_basestring_ascii(key) + ": ")
            _pretty(value, indent, level, out, markers)
        out.append("\n" + indent * (level - 1) + "}")
        del markers[marker]
    else:
        marker = _mark(o, markers)
        _pretty(_default(o), indent, level, out, markers)
        del markers[marker]


def _mark(o: object, markers: dict[int, object]) -> int:
    marker = id(o)
    if marker in markers:
        raise ValueError("Circular reference detected")
    markers[marker] = o
    return marker
