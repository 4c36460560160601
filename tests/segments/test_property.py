"""Property test: the compiled SQL selects exactly the users the Python reference evaluator
selects, for random users with heterogeneous markers and event histories, and random filters
(``did …`` included) — on every backend."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from relove.db.models import User
from relove.errors import FilterError
from relove.events.models import Event
from relove.segments import compile_filter, matches, parse_filter
from relove.segments.operators import check_condition
from relove.segments.tree import (
    And,
    Condition,
    DateValue,
    Did,
    Field,
    FilterTree,
    Not,
    Or,
    RelativeDate,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ALPHABET = "abzAZБбяЯёЁ 1-"
KEYS = ["a", "city", "tags", "Город"]

texts = st.text(alphabet=ALPHABET, max_size=4)
numbers = st.one_of(st.integers(-20, 20), st.sampled_from([0.5, -1.5, 2.25, 7.0, 1e3]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(["x", "y"]), children,
                                                        max_size=2)
    ),
    max_leaves=6,
)
documents = st.dictionaries(
    st.sampled_from(KEYS + ["n"]),
    st.one_of(json_values, st.fixed_dictionaries({}, optional={"x": json_values})),
    max_size=5,
)
moments = st.one_of(
    st.none(), st.integers(0, 24 * 90).map(lambda h: NOW - timedelta(hours=h, minutes=7))
)
EVENT_NAMES = ["message.received", "command.used", "marker.changed"]
PROP_KEYS = ["command", "key", "new", "n"]
# Whole hours back from NOW: 168 h is exactly the edge of ``within 7d``, 24 h of ``within 1d``.
events = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(EVENT_NAMES),
            "props": st.dictionaries(st.sampled_from(PROP_KEYS), json_values, max_size=3),
            "at": st.one_of(st.integers(0, 24 * 40), st.sampled_from([24, 36, 168, 720]))
            .map(lambda h: NOW - timedelta(hours=h)),
        }
    ),
    max_size=6,
)
users = st.lists(
    st.fixed_dictionaries(
        {
            "events": events,
            "username": st.one_of(st.none(), texts),
            "first_name": st.one_of(st.none(), texts),
            "is_active": st.booleans(),
            "gender": st.sampled_from(["male", "female", "unknown"]),
            "markers": documents,
            "context": st.dictionaries(st.sampled_from(["summary", "x"]), scalars, max_size=2),
            "last_seen_at": moments,
            "created_at": moments.map(lambda m: m or NOW - timedelta(days=400)),
        }
    ),
    min_size=1,
    max_size=10,
)

json_fields = st.sampled_from(
    [Field("markers", (k,)) for k in KEYS]
    + [Field("markers", ("n", "x")), Field("markers", ("missing",)), Field("context", ("summary",))]
)
dates = st.one_of(
    st.sampled_from(["2026-11-20", "2026-10-01", "2026-11-27T11:30"]).map(DateValue.parse),
    st.sampled_from(["-1d", "-36h", "-2w", "-30d", "-90m"]).map(RelativeDate.parse),
)
patterns = st.sampled_from(["^a", "б$", "a|я", "[аa]b", "^$", ".", "z.*1", "\\d", "Ё", "^-"])


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    kind = draw(st.sampled_from(["json", "json", "json", "text", "date", "bool", "gender"]))
    if kind == "json":
        field = draw(json_fields)
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains",
                                   "not contains", "icontains", "~", "!~", "exists",
                                   "not exists", "between"]))  # fmt: skip
        if op in ("icontains", "~", "!~"):
            value = draw(patterns) if "~" in op else draw(texts)
        elif op in ("exists", "not exists"):
            value = None
        elif op in ("in", "not in"):
            value = tuple(draw(st.lists(st.one_of(st.booleans(), numbers, texts), min_size=1,
                                        max_size=3)))  # fmt: skip
        elif op == "between":
            kinds = draw(st.sampled_from([numbers, texts]))
            value = (draw(kinds), draw(kinds))
        elif op in ("<", "<=", ">", ">="):
            value = draw(st.one_of(numbers, texts))
        else:
            value = draw(st.one_of(st.booleans(), numbers, texts))
    elif kind == "text":
        field = Field(None, (draw(st.sampled_from(["username", "first_name"])),))
        op = draw(st.sampled_from(["=", "!=", "<", ">=", "contains", "icontains", "~", "!~",
                                   "exists", "not exists", "in"]))  # fmt: skip
        if op in ("exists", "not exists"):
            value = None
        elif "~" in op:
            value = draw(patterns)
        elif op == "in":
            value = tuple(draw(st.lists(texts, min_size=1, max_size=3)))
        else:
            value = draw(texts)
    elif kind == "date":
        field = Field(None, (draw(st.sampled_from(["last_seen_at", "created_at"])),))
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "between", "exists"]))
        if op == "exists":
            value = None
        elif op == "between":
            value = (draw(dates), draw(dates))
        else:
            value = draw(dates)
    elif kind == "bool":
        field, op, value = Field(None, ("is_active",)), draw(st.sampled_from(["=", "!="])), draw(
            st.booleans()
        )
    else:
        field, op = Field(None, ("gender",)), draw(st.sampled_from(["=", "!=", "in"]))
        value = draw(st.sampled_from(["male", "female", "unknown"]))
        if op == "in":
            value = (value, "unknown")
    return check_condition(Condition(field, op, value))


prop_fields = st.sampled_from(
    [Field("props", (k,)) for k in PROP_KEYS] + [Field("props", ("n", "x"))]
)


@st.composite
def prop_conditions(draw: st.DrawFn) -> Condition:
    op = draw(st.sampled_from(["=", "!=", "<", ">=", "in", "contains", "icontains", "~",
                               "exists", "not exists", "between"]))  # fmt: skip
    if op in ("exists", "not exists"):
        value = None
    elif op == "~":
        value = draw(patterns)
    elif op == "icontains":
        value = draw(texts)
    elif op == "in":
        value = tuple(draw(st.lists(st.one_of(numbers, texts), min_size=1, max_size=3)))
    elif op == "between":
        kinds = draw(st.sampled_from([numbers, texts]))
        value = (draw(kinds), draw(kinds))
    elif op in ("<", ">="):
        value = draw(st.one_of(numbers, texts))
    else:
        value = draw(st.one_of(st.booleans(), numbers, texts))
    return check_condition(Condition(draw(prop_fields), op, value))


wheres: st.SearchStrategy[FilterTree] = st.recursive(
    prop_conditions(),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=2).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=2).map(lambda xs: Or(tuple(xs))),
        children.map(Not),
    ),
    max_leaves=3,
)
dids = st.builds(
    Did,
    st.sampled_from(EVENT_NAMES + ["link.clicked"]),
    st.one_of(st.none(), wheres),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
    st.integers(0, 3),
    st.sampled_from([None, "1d", "36h", "7d", "30d", "90m"]),
)

filters: st.SearchStrategy[FilterTree] = st.recursive(
    st.one_of(conditions(), dids),
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        children.map(Not),
    ),
    max_leaves=4,
)


@settings(
    max_examples=int(os.environ.get("RELOVE_PROPERTY_EXAMPLES", "80")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=users, trees=st.lists(filters, min_size=1, max_size=8))
async def test_compiled_filters_select_what_the_reference_evaluator_selects(
    engine, population, trees
):
    dialect = engine.dialect.name
    history = [{"user_id": i + 1, "source": "bot", **e}
               for i, u in enumerate(population) for e in u["events"]]  # fmt: skip
    # Events of no one user, and of someone who is not a user, match no user.
    history += [{"user_id": None, "source": "system", "name": n, "props": {}, "at": NOW}
                for n in EVENT_NAMES] + [{"user_id": 10_000, "source": "bot",
                                          "name": "message.received", "props": {}, "at": NOW}]
    async with engine.begin() as conn:
        await conn.execute(delete(User))
        await conn.execute(delete(Event))
        await conn.execute(
            User.__table__.insert(),
            [{"id": i + 1, "updated_at": NOW, **{k: v for k, v in u.items() if k != "events"}}
             for i, u in enumerate(population)],
        )  # fmt: skip
        await conn.execute(Event.__table__.insert(), history)
    reference = [{"id": i + 1, **u} for i, u in enumerate(population)]
    async with engine.connect() as conn:
        for tree in trees:
            # The text form round-trips, so what an operator types compiles the same.
            assert parse_filter(tree.to_text()) == tree
            assert FilterTree.from_json(tree.to_json()) == tree
            expected = [u["id"] for u in reference if matches(tree, u, now=NOW)]
            stmt = select(User.id).where(compile_filter(tree, dialect=dialect, now=NOW))
            got = sorted((await conn.execute(stmt.order_by(User.id))).scalars())
            assert got == expected, tree.to_text()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parser_fuzz_arbitrary_text_gives_a_filter_error_or_a_tree(text):
    try:
        tree = parse_filter(text)
    except FilterError as e:
        assert str(e)
        assert e.position is None or 1 <= e.position <= len(text) + 1
    else:
        assert parse_filter(tree.to_text()) == tree


_TOKENS = ['city', 'markers.a', '"x"', "'y'", '=', '!=', '~', 'in', 'not', 'and', 'or', '(',
           ')', ',', '1', '-1.5', '2026-01-31', '-30d', 'true', 'between', 'contains', 'exists',
           'segment:"s"', 'is_active', 'last_seen_at', '"unclosed', '>=', 'icontains', '.',
           '!~']  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=12))
def test_parser_fuzz_token_soup_gives_a_filter_error_or_a_tree(tokens):
    text = " ".join(tokens)
    try:
        tree = parse_filter(text)
    except FilterError as e:
        assert e.position is None or 1 <= e.position <= len(text) + 1
    else:
        assert parse_filter(tree.to_text()) == tree
