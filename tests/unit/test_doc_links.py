"""Every relative link in README.md, CONTRIBUTING.md and docs/*.md points to
a file that exists and, with a #fragment, to a heading that exists there
(GitHub's anchor rule)."""

from __future__ import annotations

import glob
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PAGES = sorted(
    [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "CONTRIBUTING.md")]
    + glob.glob(os.path.join(ROOT, "docs", "*.md")))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) (.*)$")


def _outside_code(text: str) -> list[str]:
    """The lines outside ``` fences, with `code spans` blanked."""
    lines, fence = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
            continue
        if not fence:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return lines


def anchors(path: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to
    hyphens, -1, -2 ... for repeats."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    seen: dict[str, int] = {}
    out = set()
    fence = False
    for line in text.split("\n"):
        if line.startswith("```"):
            fence = not fence
            continue
        m = HEADING.match(line)
        if m and not fence:
            base = re.sub(r"[^\w\- ]", "", m.group(2).strip().lower()).replace(" ", "-")
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_there_are_pages() -> None:
    assert os.path.join(ROOT, "README.md") in PAGES
    assert len(PAGES) > 5


@pytest.mark.parametrize("page", [os.path.relpath(p, ROOT) for p in PAGES])
def test_relative_links_resolve(page: str) -> None:
    path = os.path.join(ROOT, page)
    if not os.path.exists(path):
        pytest.skip(f"{page} does not exist")
    with open(path, encoding="utf-8") as f:
        lines = _outside_code(f.read())
    broken = []
    for line in lines:
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):      # http:, https:, mailto:
                continue
            file_part, _, fragment = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
            if not os.path.exists(dest):
                broken.append(f"{target} (no file {os.path.relpath(dest, ROOT)})")
            elif fragment and dest.endswith(".md") and fragment not in anchors(dest):
                broken.append(f"{target} (no heading #{fragment} in {os.path.relpath(dest, ROOT)})")
    assert not broken, f"{page} has broken links: " + "; ".join(broken)
