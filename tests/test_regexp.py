"""Regular expressions in filters: bounded in time on SQLite and in the evaluator, the same
dialect everywhere, and no import from relove.db into relove.segments."""

from __future__ import annotations

import subprocess
import sys

import pytest

from relove.db.models import User
from relove.errors import FilterError
from relove.regexp import (
    STATEMENT_BUDGET_S,
    TOO_SLOW,
    VALUE_TIMEOUT_S,
    RegexTooSlow,
    StatementBudget,
    check,
    search,
)
from relove.segments import count_users, matches

#: Exponential for a backtracking engine: every split of the a's into "a" and "aa" is tried.
BOMB = "(a|aa)+$"
VICTIM = "a" * 63 + "!"


@pytest.fixture
async def victims(session_factory):
    async with session_factory.begin() as s:
        s.add_all([User(id=1, username="a" * 64, markers={"bio": VICTIM}),
                   User(id=2, username=VICTIM, markers={"bio": "b"})])  # fmt: skip
    return session_factory


async def test_a_regex_bomb_ends_with_one_clear_line(victims):
    async with victims() as s:
        # The pattern: a backtracking `re` never finished on 64 characters.
        assert await count_users(s, 'username ~ "(a+)+$"') == 1
        pg = s.get_bind().dialect.name == "postgresql"
        for text, count in ((f'username ~ "{BOMB}"', 1), (f'bio ~ "{BOMB}"', 0)):
            if pg:  # PostgreSQL's own engine is not backtracking: it simply answers
                assert await count_users(s, text) == count
            else:
                with pytest.raises(RegexTooSlow) as info:
                    await count_users(s, text)
                assert str(info.value) == TOO_SLOW
                assert isinstance(info.value, FilterError)
        assert await count_users(s, 'username ~ "^a+$"') == 1  # the connection still works


def test_the_evaluator_is_bounded_too():
    with pytest.raises(RegexTooSlow):
        matches(f'bio ~ "{BOMB}"', {"markers": {"bio": VICTIM}})
    assert matches('bio ~ "^A+!$"', {"markers": {"bio": VICTIM}})


def test_a_statement_has_one_budget_for_all_its_values():
    """Each search is charged the time the clock says it took; past the budget the statement
    stops, and the next one starts afresh."""
    ticks = iter(range(1000))
    budget = StatementBudget(clock=lambda: next(ticks) * VALUE_TIMEOUT_S)  # each search: 1 tick
    searches = 0
    with pytest.raises(RegexTooSlow):
        while True:
            assert budget("^a", "abc") == 1
            searches += 1
    assert abs(searches - STATEMENT_BUDGET_S / VALUE_TIMEOUT_S) <= 1
    budget.start()
    assert budget("^a", "abc") == 1
    assert budget("^a", None) == 0


@pytest.mark.parametrize("pattern", ["a{e<=1}", "x{", "(?>a)", "a++", "\\p{L}", "(?<=a)b"])
def test_syntax_one_engine_reads_differently_is_refused(pattern):
    with pytest.raises(FilterError, match="not supported|invalid"):
        check(pattern)


def test_the_dialect_reads_like_postgresql():
    assert search("^иван$", "ИВАН")
    assert search(r"^\w+$", "Ёлка")
    assert search("a.b", "a\nb")
    assert not search("a$", "a\n")
    assert search("a{2}", "aa") and search("x(?=y)", "xy") and search(r"\{", "{")


def test_relove_db_does_not_import_the_segments():
    code = ("import sys, relove.db.engine, relove.db.sqlite_functions\n"
            "print(sorted(m for m in sys.modules if m.startswith('relove.segments')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
