"""The filter language's limits: every value both databases read alike, long lists and chains
working on both, saved-segment chains bounded — refused with a FilterError before any SQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from relove.db.models import User
from relove.errors import FilterError
from relove.segments import (
    FilterTree,
    compile_filter,
    count_users,
    find_user_ids,
    matches,
    parse_filter,
    save_segment,
)
from relove.segments.lower import MAX_NESTING, MAX_SEGMENT_DEPTH, MAX_TERMS
from relove.segments.models import Segment
from relove.segments.operators import MAX_IN_VALUES, OPERATORS, Arity


@pytest.fixture
async def people(session_factory):
    async with session_factory.begin() as s:
        s.add_all(
            [
                User(id=1, username="u1", markers={"a": 1, "city": "Москва", "tags": ["x"]}),
                User(id=2, username="u500", markers={"a": 500.0, "city": "c998"}),
                User(id=3, username="u999", markers={"a": "1", "city": 7}),
                User(id=4, username=None, markers={"a": True}),
            ]
        )
    return session_factory


# -- defect 3: filters that parse but crashed ---------------------------------------------------
BAD_VALUES = [
    ("created_at > 9999-12-31", "out of range"),
    ("created_at < 0001-01-01T00:00+05:00", "out of range"),
    ('last_seen_at > "9999-12-31"', "is a date"),
    ("created_at > -999999w", "too far away"),
    ("score > 99999999999999999999", "signed 64-bit"),
    ("score < -9223372036854775809", "signed 64-bit"),
    ("id = 9223372036854775808", "signed 64-bit"),
    ("score in (1, 99999999999999999999)", "signed 64-bit"),
    ('city = "\\ud800"', "lone surrogate"),
    ('username icontains "a\\udfffb"', "lone surrogate"),
    ('city = "\\u0000"', "NUL"),
    ('username ~ "a\\u0000"', "NUL"),
    ('segment:"\\ud800"', "lone surrogate"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_VALUES)
async def test_values_the_databases_read_differently_are_refused_before_sql(
    people, text, fragment
):
    with pytest.raises(FilterError) as parsed:
        parse_filter(text)
    assert fragment in str(parsed.value)
    async with people() as s:  # the same one line on every database, never a database error
        with pytest.raises(FilterError) as used:
            await count_users(s, text)
    assert str(used.value) == str(parsed.value)
    assert "database" not in str(used.value)


def test_the_json_form_applies_the_same_rules():
    for data in (
        {"field": "markers.city", "op": "=", "value": "\u0000"},
        {"field": "markers.score", "op": ">", "value": 2**63},
        {"field": "created_at", "op": ">", "value": {"date": "9999-12-31"}},
        {"segment": "\ud800"},
    ):
        with pytest.raises(FilterError):
            FilterTree.from_json(data)


async def test_values_at_the_edges_of_the_ranges_work(people):
    async with people() as s:
        for text in ("created_at < 9999-12-30", "created_at > 0001-01-02",
                     "score < 9223372036854775807", "id > -9223372036854775808",
                     "created_at > -36500d"):  # fmt: skip
            assert await count_users(s, text) in (0, 4)


# -- defect 8: long in lists and OR chains ------------------------------------------------------
async def _ids(s, flt):
    return await find_user_ids(s, flt)


async def test_in_with_the_documented_maximum_works_on_every_database(people):
    strings = ", ".join(f'"c{i}"' for i in range(MAX_IN_VALUES - 1)) + ', "Москва"'
    numbers = ", ".join(str(i) for i in range(MAX_IN_VALUES))
    async with people() as s:
        assert await _ids(s, f"city in ({strings})") == [1, 2]
        assert await _ids(s, f"a in ({numbers})") == [1, 2]  # 500.0 is the number 500
        assert await _ids(s, f"a not in ({numbers})") == [3, 4]
        names = ", ".join(f'"u{i}"' for i in range(MAX_IN_VALUES))
        assert await _ids(s, f"username in ({names})") == [1, 2, 3]
        assert await _ids(s, f"username not in ({names})") == [4]
        assert await _ids(s, f"id in ({numbers})") == [1, 2, 3, 4]
        mixed = ", ".join(str(i) for i in range(MAX_IN_VALUES - 2)) + ', true, "1"'
        assert await _ids(s, f"a in ({mixed})") == [1, 2, 3, 4]
    with pytest.raises(FilterError, match=f"at most {MAX_IN_VALUES} values"):
        parse_filter(f"a in ({numbers}, 1000)")


async def test_long_or_and_and_chains_work_on_every_database(people):
    ors = "||".join(f"a={i}" for i in range(1, 1101))
    ands = "&&".join(f"a!={i}" for i in range(1, 1101))
    async with people() as s:
        assert await _ids(s, ors) == [1, 2]
        assert await _ids(s, ands) == [3, 4]


async def test_the_budget_holds_on_every_database_with_the_costliest_comparisons(people):
    """At the budget, the costliest comparisons (a date is two comparisons, the most
    parameters on PostgreSQL; contains is the most on SQLite) still fit the databases' limits."""
    half = MAX_TERMS // 2
    program = {
        "or": [{"field": "markers.tags", "op": "contains", "value": f"t{i}"} for i in range(half)]
        + [{"field": "markers.a.b", "op": "=", "value": {"date": "2026-01-31"}}] * (half // 2)
    }
    async with people() as s:
        assert await _ids(s, program) == []
        program["or"].append({"field": "markers.tags", "op": "contains", "value": "x"})
        with pytest.raises(FilterError, match=f"more than {MAX_TERMS} comparisons"):
            await count_users(s, program)


def test_in_lists_compile_to_one_bound_list_on_sqlite():
    values = ", ".join(f'"v{i}"' for i in range(MAX_IN_VALUES))
    expr = compile_filter(f"city in ({values})", dialect="sqlite")
    params = select(User.id).where(expr).compile(dialect=sqlite.dialect()).params
    assert len(params) < 10
    lists = [v for v in params.values() if isinstance(v, str) and v.startswith("[")]
    assert [len(json.loads(v)) for v in lists] == [MAX_IN_VALUES]


# -- nesting -------------------------------------------------------------------------------------
def test_nesting_is_bounded_and_measured_without_recursion():
    deep = "not " * MAX_NESTING + "VIP"
    assert matches(deep, {"markers": {"VIP": True}}) is (MAX_NESTING % 2 == 0)
    with pytest.raises(FilterError, match="nested too deeply"):
        parse_filter("not " * (MAX_NESTING + 1) + "VIP")
    with pytest.raises(FilterError, match="nested too deeply"):
        parse_filter("(a = 1 and " * 400 + "b = 1" + ")" * 400)
    program: dict = {"field": "markers.a", "op": "=", "value": 1}
    for _ in range(5000):
        program = {"not": program}
    with pytest.raises(FilterError, match="nested too deeply"):
        FilterTree.from_json(program)


# -- defect 7: saved-segment chains --------------------------------------------------------------
async def test_a_chain_past_the_depth_limit_is_refused_at_save_and_at_use(people):
    async with people.begin() as s:
        await save_segment(s, "s1", "a = 1")
        for k in range(2, MAX_SEGMENT_DEPTH + 1):
            await save_segment(s, f"s{k}", f'segment:"s{k - 1}"')
        with pytest.raises(FilterError, match=f"more than {MAX_SEGMENT_DEPTH} levels"):
            await save_segment(s, "too deep", f'segment:"s{MAX_SEGMENT_DEPTH}"')
    async with people() as s:
        assert await _ids(s, f'segment:"s{MAX_SEGMENT_DEPTH}"') == [1]
    # A chain written straight into the table (an older version, an import …) is refused when
    # used: one line, no RecursionError, and at most MAX_SEGMENT_DEPTH lookups.
    async with people.begin() as s:
        s.add_all([Segment(name=f"c{k}", filter=f'segment:"c{k - 1}"' if k else "a = 1")
                   for k in range(1200)])  # fmt: skip
    async with people() as s:
        with pytest.raises(FilterError, match=f"more than {MAX_SEGMENT_DEPTH} levels"):
            await count_users(s, 'segment:"c1199"')


async def test_a_doubling_chain_is_refused_by_the_size_budget(people):
    eight = " || ".join(f"a = {i}" for i in range(8))
    async with people.begin() as s:
        await save_segment(s, "d0", eight)
        k = 1
        with pytest.raises(FilterError, match=f"more than {MAX_TERMS} comparisons"):
            while k < MAX_SEGMENT_DEPTH:
                await save_segment(s, f"d{k}", f'segment:"d{k - 1}" or segment:"d{k - 1}"')
                k += 1
        # Refused exactly where it passed the budget, not before.
        assert 8 * 2 ** (k - 1) <= MAX_TERMS < 8 * 2**k
    async with people.begin() as s:  # written straight into the table: refused at use
        s.add_all([Segment(name=f"x{k}", filter=f'segment:"x{k - 1}" or segment:"x{k - 1}"'
                           if k else eight) for k in range(10)])  # fmt: skip
    async with people() as s:
        with pytest.raises(FilterError, match=f"more than {MAX_TERMS} comparisons"):
            await count_users(s, 'segment:"x9"')
    with pytest.raises(FilterError, match=f"more than {MAX_TERMS} comparisons"):
        matches('segment:"x9"', {}, segments={f"x{k}": parse_filter(
            f'segment:"x{k - 1}" or segment:"x{k - 1}"' if k else eight) for k in range(10)})


async def test_changing_a_segment_is_refused_when_it_would_break_a_segment_using_it(people):
    async with people.begin() as s:
        await save_segment(s, "base", "a = 1")
        await save_segment(s, "user", 'segment:"base" or segment:"base"')
        big = "a in (" + ", ".join(str(i) for i in range(MAX_TERMS // 2)) + ") or a = -1"
        with pytest.raises(FilterError, match="would break segment 'user'"):
            await save_segment(s, "base", big)
        await save_segment(s, "base", "a = 500")
    async with people() as s:
        assert await _ids(s, 'segment:"user"') == [2]


# -- the operator table --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OPERATORS))
def test_every_operator_in_the_table_parses_prints_and_round_trips(name):
    op = OPERATORS[name]
    value = {Arity.NONE: "", Arity.ONE: ' "x"', Arity.LIST: ' ("x", "y")',
             Arity.PAIR: ' "a" and "b"'}[op.arity]  # fmt: skip
    tree = parse_filter(f"city {name}{value}")
    assert tree.to_text() == f"city {name}{value}"
    assert FilterTree.from_json(tree.to_json()) == tree
    assert FilterTree.from_json({"field": "city", "op": name.upper(), **(
        {"value": tree.to_json()["value"]} if op.arity is not Arity.NONE else {})}) == tree


def _syntax_error_listing() -> str:
    with pytest.raises(FilterError) as info:
        parse_filter("city like 1")
    return str(info.value)


def test_the_operator_message_lists_every_operator_of_the_table():
    listing = _syntax_error_listing()
    for op in OPERATORS.values():
        if op.token:
            assert op.name in listing
