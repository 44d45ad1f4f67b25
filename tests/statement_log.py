"""The SQL an engine sends, recorded for tests that count a code path's statements."""

from __future__ import annotations

from sqlalchemy import Engine, event

DATA_VERBS = ("SELECT", "UPDATE", "INSERT", "DELETE")


def recorded_statements(engine: Engine) -> list[str]:
    """A list that receives every statement `engine` executes from now on (clear it to reset)."""
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def data_statements(seen: list[str]) -> list[str]:
    """The reads and writes among recorded statements (not BEGIN, SAVEPOINT or pings)."""
    return [s for s in seen if s.lstrip().upper().startswith(DATA_VERBS)]
