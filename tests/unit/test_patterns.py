"""The schema's patterns as pure-Python predicates agree with ECMA-262 regular expressions.

JSON Schema patterns are ECMA-262: unanchored (a search), and ``$`` without the
"m" flag matches only at the very end, where Python's ``$`` also matches before
a final newline.  Python's ``re.search`` with the final ``$`` written ``\\Z`` is
the ECMA meaning for these patterns (they use nothing else whose meaning differs:
ASCII classes and ranges, no ``\\d``/``\\w``, no ``.``).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pyoci.spec import _validator, load, schemagen

SEEDS = {
    "oci_version": [
        "1.0.0", "1.0.2-dev", "1.1.0-rc.3", "1.2.1", "1.3.0+dev", "1.3.10", "1.0.0-", "1.2.3+a.B-c+9",
    ],
    "rlimit_type": ["RLIMIT_NOFILE", "RLIMIT_A", "RLIMIT_CPU", "RLIMIT_"],
    "cpu_list": ["0-3,7", "", "1, 2 - 5", "0", "12"],
    "page_size": ["2MB", "1GB", "64KB", "10240MB", "1B"],
    "mem_bw_schema": ["MB:0=20;1=70", "MB:", "MB:\r", "MB:a b"],
}
# Characters near the edges of each pattern's classes, white space, and a
# non-ASCII digit and letter that str.isdigit()/isupper() would let through.
COMMON = "019.-+, :_\n\r\t\x00\u0661\u00c9\u2028"
ALPHABETS = {
    "oci_version": COMMON + "23aZ",
    "rlimit_type": COMMON + "ARZa",
    "cpu_list": COMMON + "5a",
    "page_size": COMMON + "KMGBb",
    "mem_bw_schema": COMMON + "MBb",
}


def _ecma(pattern: str) -> re.Pattern[str]:
    assert pattern.startswith("^") and pattern.endswith("$") and pattern.count("$") == 1
    return re.compile(pattern[:-1] + r"\Z")


def _samples(slug: str) -> set[str]:
    """Every seed prefix followed by every string of up to 2 characters, plus random edits of the seeds."""
    alphabet = ALPHABETS[slug]
    tails = ["".join(t) for n in range(3) for t in itertools.product(alphabet, repeat=n)]
    out = set()
    for seed in SEEDS[slug]:
        for i in range(len(seed) + 1):
            out.update(seed[:i] + tail for tail in tails)
            out.update(tail + seed[i:] for tail in tails[: 1 + len(alphabet)])
    rng = random.Random(slug)
    for _ in range(20_000):
        text = rng.choice(SEEDS[slug])
        for _ in range(rng.randrange(1, 5)):
            i = rng.randrange(len(text) + 1)
            op = rng.randrange(4)
            if op == 0:
                text = text[:i] + rng.choice(alphabet) + text[i:]
            elif op == 1:
                text = text[:i] + text[i + 1 :]
            elif op == 2:
                text = text[:i] + rng.choice(alphabet) + text[i + 1 :]
            else:
                text = text[:i] + text[i:] * 2
        out.add(text)
    return out


def _predicate(slug: str) -> Callable[[str], bool]:
    func = getattr(_validator, "_match_" + slug)
    assert callable(func)
    return func  # type: ignore[no-any-return]


PATTERNS = sorted(schemagen.PATTERN_PREDICATES.items(), key=lambda item: item[1][0])


def test_every_schema_pattern_has_seeds() -> None:
    assert {slug for _, (slug, _) in PATTERNS} == set(SEEDS)


@pytest.mark.parametrize(("pattern", "entry"), PATTERNS, ids=[slug for _, (slug, _) in PATTERNS])
def test_predicate_agrees_with_ecma_regex(pattern: str, entry: tuple[str, str]) -> None:
    slug = entry[0]
    predicate = _predicate(slug)
    regex = _ecma(pattern)
    samples = _samples(slug)
    matched = 0
    wrong = []
    for text in samples:
        want = regex.search(text) is not None
        matched += want
        if predicate(text) != want:
            wrong.append(text)
    assert not wrong, f"{pattern}: predicate disagrees with the regex on {sorted(wrong)[:10]!r}"
    assert len(samples) > 10_000 and matched > 100, (len(samples), matched)
    # Python's own $ would take a trailing newline; ECMA's doesn't, and neither does pyoci.
    for seed in SEEDS[slug]:
        if re.search(pattern, seed) and not seed.endswith("\n"):
            assert re.search(pattern, seed + "\n") and not predicate(seed + "\n")


def test_version_check_agrees_with_its_regex() -> None:
    regex = re.compile(load.VERSION_PATTERN)
    samples = _samples("oci_version")
    assert sum(load.is_supported_version(t) for t in samples) > 100
    for text in samples:
        assert load.is_supported_version(text) == (regex.fullmatch(text) is not None), repr(text)


def test_generated_validator_has_no_regex() -> None:
    source = Path(_validator.__file__).read_text()
    assert "import re" not in source and "re.compile" not in source


def test_generator_refuses_a_pattern_without_predicate(tmp_path: Path) -> None:
    schema = '{"type": "object", "properties": {"a": {"type": "string", "pattern": "^a+$"}}}'
    (tmp_path / schemagen.SCHEMA_FILE).write_text(schema)
    with pytest.raises(schemagen.SchemaError, match=r"no pure-Python predicate for pattern '\^a\+\$'"):
        schemagen.generate(str(tmp_path))
