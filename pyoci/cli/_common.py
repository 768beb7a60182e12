"""Helpers shared by the verb modules."""

from __future__ import annotations

from pyoci import report
from pyoci.errors import UsageError


def one_id(pos: list[str], usage: str) -> str:
    if len(pos) != 1:
        raise UsageError(f"expected exactly one container id (usage: {usage})")
    report.bind(id=pos[0])
    return pos[0]
