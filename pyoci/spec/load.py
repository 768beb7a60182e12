"""Read and check a bundle's config.json (and the other JSON documents the CLI takes).

This is on the path of `create` and `run`, so it imports only os, sys and
pyoci's own modules: JSON goes through :mod:`pyoci.jsonfast` (json's C scanner
without ``import json``, which imports ``re`` and ``enum``: ~10 ms), validation
is the generated straight-line validator (:mod:`pyoci.spec._validator`), never
the jsonschema library, and nothing uses ``re`` or ``typing``.
tests/unit/test_import_cost.py keeps it that way.

Order of checks, each failure a :class:`ConfigError` naming the JSON path:
read the file (a regular file of at most 16 MiB, :data:`limits.MAX_DOCUMENT_BYTES`),
parse JSON, no NUL or lone surrogate in any string (:func:`limits.check_strings`),
``ociVersion`` in 1.0.x..1.3.x, the schema, the ranges of the numbers that reach C
(:func:`limits.check_numbers`), then the semantic checks in :mod:`pyoci.spec.checks`.
Between the schema and the number ranges, properties the schema does not list
are removed (and named with ``--debug``): the runtime-spec says runtimes MUST
ignore unknown properties.
"""

from __future__ import annotations

import os
import sys

from pyoci import jsonfast, report
from pyoci.errors import ConfigError, PyociError
from pyoci.spec import _validator, checks, limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

CONFIG_NAME = "config.json"
SUPPORTED_VERSIONS = "1.0.x through 1.3.x"
# SemVer with major 1 and minor 0..3; pre-release/build suffixes ("1.0.2-dev")
# allowed.  The regular expression (for a full match) that is_supported_version
# implements by hand:
VERSION_PATTERN = r"1\.[0-3]\.(?:0|[1-9][0-9]*)(?:[-+][0-9A-Za-z.+-]*)?"
_DIGITS = "0123456789"
_SUFFIX_CHARS = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.+-"


def load_config(bundle: str) -> dict[str, Any]:
    """Return ``<bundle>/config.json`` as a dict, fully validated.

    Raises PyociError if the file can't be read and ConfigError for anything
    wrong with its content.
    """
    path = os.path.join(bundle, CONFIG_NAME)
    report.phase("imports")
    raw = _read(path, "read config")
    doc = _parse(raw)
    report.phase("load")
    _check(doc, raw)
    report.phase("validate")
    return doc


def parse_config(text: str | bytes) -> dict[str, Any]:
    """Like :func:`load_config` for a config already in memory."""
    doc = _parse(text)
    _check(doc, text)
    return doc


def _check(doc: dict[str, Any], raw: str | bytes) -> None:
    limits.check_strings(doc, raw=raw)
    check_version(doc)
    _validator.validate(doc)
    _ignore_unknown(_validator.strip_unknown(doc))
    limits.check_numbers(doc)
    checks.check_config(doc)


def load_process(path: str) -> dict[str, Any]:
    """Read and check an `exec --process` file (a config.json "process" object)."""
    try:
        raw = _read(path, "read process file")
        doc = _parse(raw)
        report.phase("load")
        limits.check_strings(doc, raw=raw)
        _validator.validate_process(doc)
        _ignore_unknown(_validator.strip_unknown_process(doc), f"process file {path}: ")
        limits.check_process_numbers(doc, "$")
        checks.check_process(doc, "$")
        report.phase("validate")
    except ConfigError as e:
        raise e.relabel(f"process file {path}") from None
    return doc


def load_resources(path: str) -> dict[str, Any]:
    """Read and check an `update --resources` file ("-" is standard input)."""
    try:
        raw = _read(path, "read resources file")
        doc = _parse(raw)
        limits.check_strings(doc, raw=raw)
        _validator.validate_resources(doc)
        _ignore_unknown(_validator.strip_unknown_resources(doc),
                        "resources from stdin: " if path == "-" else f"resources file {path}: ")
    except ConfigError as e:
        raise e.relabel("resources from stdin" if path == "-" else f"resources file {path}") from None
    return doc


def _ignore_unknown(paths: list[str], where: str = "config.json ") -> None:
    """The runtime-spec's Extensibility rule: a property pyoci does not know
    is no error; the generated validator has removed it from the document
    (so nothing later acts on it), and --debug names each one."""
    if paths:
        from pyoci.report import debug

        for path in paths:
            debug(f"{where}{path}: ignoring unknown property (the runtime-spec says to ignore "
                  "properties a runtime does not know)")


def check_version(doc: dict[str, Any]) -> None:
    """ociVersion must be present and a version pyoci implements."""
    version = doc.get("ociVersion")
    if version is None:
        raise ConfigError("$.ociVersion", "is required")
    if not isinstance(version, str):
        raise ConfigError("$.ociVersion", "must be a string")
    if not is_supported_version(version):
        raise ConfigError(
            "$.ociVersion",
            f"unsupported version {jsonfast.dumps(version)}: pyoci implements {SUPPORTED_VERSIONS}",
        )


def is_supported_version(version: str) -> bool:
    """True if *version* matches all of VERSION_PATTERN (without ``re``)."""
    if len(version) < 5 or version[:2] != "1." or version[2] not in "0123" or version[3] != ".":
        return False
    end = 5
    if version[4] != "0":  # no leading zeros
        if version[4] not in "123456789":
            return False
        while end < len(version) and version[end] in _DIGITS:
            end += 1
    suffix = version[end:]
    return not suffix or (suffix[0] in "-+" and not suffix[1:].strip(_SUFFIX_CHARS))


def _read(path: str, op: str) -> bytes:
    """The whole file (or standard input for "-"), refusing anything but a
    regular file and anything over MAX_DOCUMENT_BYTES: a config.json that is
    a link to /dev/zero, a FIFO or a 1 GB file must not hang pyoci or fill
    its memory."""
    limit = limits.MAX_DOCUMENT_BYTES
    where = "standard input" if path == "-" else path
    try:
        if path == "-":
            fd = sys.stdin.fileno()
            data = _read_fd(fd, limit)
        else:
            # stat before open: opening a device or a FIFO can block or act.
            _require_regular(os.stat(path), op, path)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)       # what was opened, in case the path changed
                _require_regular(st, op, path)
                if st.st_size > limit:
                    _too_big(op, path, st.st_size)
                data = _read_fd(fd, limit)
            finally:
                os.close(fd)
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError)
        hint = "is --bundle right?" if missing and path.endswith(CONFIG_NAME) else None
        raise PyociError.from_os(op, exc, path=where, hint=hint) from None
    if len(data) > limit:
        _too_big(op, where, None)
    return data


def _read_fd(fd: int, limit: int) -> bytes:
    """Up to limit + 1 bytes (one more than allowed tells "too big")."""
    chunks = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


_FILE_TYPES = {0o020000: "a character device", 0o060000: "a block device", 0o010000: "a FIFO",
               0o140000: "a socket", 0o040000: "a directory"}


def _require_regular(st: os.stat_result, op: str, path: str) -> None:
    kind = st.st_mode & 0o170000
    if kind != 0o100000:
        raise PyociError(f"{op} {path}: {_FILE_TYPES.get(kind, 'a special file')}, not a regular file",
                         op=op, path=path)


def _too_big(op: str, where: str, size: int | None) -> NoReturn:
    mib = limits.MAX_DOCUMENT_BYTES // (1024 * 1024)
    text = f" ({size} bytes)" if size is not None else ""
    raise PyociError(f"{op} {where}: larger than pyoci's limit of {mib} MiB{text}", op=op, path=where)


def _reject_constant(name: str) -> NoReturn:
    raise ConfigError("$", f"not valid JSON: {name} is not a JSON value")


def _parse(text: str | bytes) -> dict[str, Any]:
    try:
        doc = jsonfast.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise ConfigError("$", f"not valid JSON: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError("$", "not valid JSON: nested too deeply") from None
    except jsonfast.JSONDecodeError as exc:  # looked up (json.decoder imported) only on failure
        raise ConfigError("$", f"not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ConfigError("$", "must be a JSON object")
    return doc
