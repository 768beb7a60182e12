"""Read and check a bundle's config.json (and the other JSON documents the CLI takes).

This is on the path of `create` and `run`, so it imports only json, os, re and
pyoci's own modules; validation is the generated straight-line validator
(:mod:`pyoci.spec._validator`), never the jsonschema library.

Order of checks, each failure a :class:`ConfigError` naming the JSON path:
read the file, parse JSON, ``ociVersion`` in 1.0.x..1.3.x, the schema, then
the semantic checks in :mod:`pyoci.spec.checks`.
"""

from __future__ import annotations

import json
import os
import re
import sys

from pyoci.errors import ConfigError, PyociError
from pyoci.spec import _validator, checks

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

CONFIG_NAME = "config.json"
SUPPORTED_VERSIONS = "1.0.x through 1.3.x"
# SemVer with major 1 and minor 0..3; pre-release/build suffixes ("1.0.2-dev") allowed.
_VERSION_RE = r"1\.[0-3]\.(?:0|[1-9][0-9]*)(?:[-+][0-9A-Za-z.+-]*)?"


def load_config(bundle: str) -> dict[str, Any]:
    """Return ``<bundle>/config.json`` as a dict, fully validated.

    Raises PyociError if the file can't be read and ConfigError for anything
    wrong with its content.
    """
    path = os.path.join(bundle, CONFIG_NAME)
    doc = _parse(_read(path, "read config"))
    check_version(doc)
    _validator.validate(doc)
    checks.check_config(doc)
    return doc


def parse_config(text: str | bytes) -> dict[str, Any]:
    """Like :func:`load_config` for a config already in memory."""
    doc = _parse(text)
    check_version(doc)
    _validator.validate(doc)
    checks.check_config(doc)
    return doc


def load_process(path: str) -> dict[str, Any]:
    """Read and check an `exec --process` file (a config.json "process" object)."""
    doc = _parse(_read(path, "read process file"))
    _validator.validate_process(doc)
    checks.check_process(doc, "$")
    return doc


def load_resources(path: str) -> dict[str, Any]:
    """Read and check an `update --resources` file ("-" is standard input)."""
    doc = _parse(_read(path, "read resources file"))
    _validator.validate_resources(doc)
    return doc


def check_version(doc: dict[str, Any]) -> None:
    """ociVersion must be present and a version pyoci implements."""
    version = doc.get("ociVersion")
    if version is None:
        raise ConfigError("$.ociVersion", "is required")
    if not isinstance(version, str):
        raise ConfigError("$.ociVersion", "must be a string")
    if re.fullmatch(_VERSION_RE, version) is None:
        raise ConfigError(
            "$.ociVersion",
            f"unsupported version {json.dumps(version)}: pyoci implements {SUPPORTED_VERSIONS}",
        )


def _read(path: str, op: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        hint = "is --bundle right?" if missing and path.endswith(CONFIG_NAME) else None
        raise PyociError.from_os(op, exc, path=path, hint=hint) from None


def _reject_constant(name: str) -> NoReturn:
    raise ConfigError("$", f"not valid JSON: {name} is not a JSON value")


def _parse(text: str | bytes) -> dict[str, Any]:
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError("$", f"not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("$", f"not valid JSON: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError("$", "not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise ConfigError("$", "must be a JSON object")
    return doc
