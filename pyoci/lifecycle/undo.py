"""The undo stack `create` and `exec` register each acquired resource's
cleanup on (pyoci.lifecycle.create, pyoci.lifecycle.exec_)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


class Undo:
    """A stack of undo actions: create and exec register one as each resource
    is acquired, and a failure runs them newest first.

    contextlib.ExitStack would do, but contextlib imports functools and
    collections, which the create path must not (tests/unit/test_import_cost.py).
    Unlike ExitStack, an undo action that raises stops the unwinding and its
    error propagates (the older actions are not run): as the hand-written
    cleanup this replaces did."""

    __slots__ = ("_actions",)

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        """Register ``action`` (named ``what``: see names()) to run if a
        later step fails."""
        self._actions.append((what, action))

    def names(self) -> list[str]:
        """What a failure now would undo, in the order it would."""
        return [what for what, _ in reversed(self._actions)]

    def unwind(self) -> None:
        """Run the actions, newest first; each runs once."""
        while self._actions:
            _, action = self._actions.pop()
            action()

    def discard(self) -> None:
        """Success: nothing is to be undone."""
        self._actions.clear()
