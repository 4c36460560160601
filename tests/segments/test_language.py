"""The filter language: the documented examples, the JSON form, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relove.errors import FilterError
from relove.segments import FilterTree, compile_filter, matches, parse_filter

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

README_EXAMPLES = [
    'city = "Москва" and VIP = true',
    'markers.interests contains "yoga" and not tags contains "spam"',
    'last_seen_at > -30d and gender = "female" and is_active',
    'score >= 50 and source in ("instagram", "ads")',
    "context.summary exists",
    'username ~ "^iv"',
    'first_name icontains "ан"',
    'created_at between 2026-01-01 and 2026-01-31T23:59:59Z or segment:"vip"',
    'city != "Москва" and tags not contains "spam" and age not between 18 and 25',
]


@pytest.mark.parametrize("text", README_EXAMPLES)
def test_examples_round_trip_through_text_and_json(text):
    tree = parse_filter(text)
    assert parse_filter(tree.to_text()) == tree
    assert FilterTree.from_json(tree.to_json()) == tree
    assert parse_filter(tree.to_text()).to_text() == tree.to_text()


def test_json_form_is_the_documented_shape():
    tree = parse_filter('city = "Москва" and not tags contains "spam" and last_seen_at > -30d')
    assert tree.to_json() == {
        "and": [
            {"field": "markers.city", "op": "=", "value": "Москва"},
            {"not": {"field": "markers.tags", "op": "contains", "value": "spam"}},
            {"field": "last_seen_at", "op": ">", "value": {"relative": "-30d"}},
        ]
    }
    program = {"or": [{"field": "gender", "op": "in", "value": ["male", "female"]},
                      {"segment": "vip"}]}  # fmt: skip
    expected = 'gender in ("male", "female") or segment:"vip"'
    assert FilterTree.from_json(program).to_text() == expected


def test_bare_names_are_markers_and_columns_win():
    assert parse_filter("VIP").to_json() == {"field": "markers.VIP", "op": "=", "value": True}
    assert parse_filter("is_active").to_json() == {"field": "is_active", "op": "=", "value": True}
    assert parse_filter("markers.username = 1").to_json()["field"] == "markers.username"
    assert parse_filter("notes = 1 and android = 2 and origin = 3").to_text() == (
        "notes = 1 and android = 2 and origin = 3"
    )


def test_keywords_are_case_insensitive_and_unicode_works():
    tree = parse_filter('Город = "Санкт-Петербург" AND NOT теги CONTAINS "спам"')
    user = {"markers": {"Город": "Санкт-Петербург", "теги": ["йога"]}}
    assert matches(tree, user)


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ('city like "x"', 6, "unknown operator 'like'"),
        ('city = "Москва', 8, "unclosed string"),
        ('last_seen_at > "abc"', 16, "last_seen_at is a date"),
        ("city =", 7, "expected a value"),
        ("(city = 1", 10, "expected )"),
        ("city = 1)", 9, "unexpected ')'"),
        ("score >= true", 10, "booleans only compare with = or !="),
        ('gender = "femal"', 10, '"female"'),
        ('username ~ "(?P<x>a)"', 12, "not supported in regular expressions"),
        ('username ~ "[a"', 12, "invalid regular expression"),
        ("id = 1.5", 6, "whole number"),
        ("city = null", 8, "exists"),
        ("markers = 1", 1, "needs a key"),
        ("username.x = 1", 1, "is a column"),
        ("  ", 1, "empty"),
        ('city in ()', 10, "expected a value"),
    ],
)
def test_bad_filters_name_the_position_and_what_was_expected(text, position, fragment):
    with pytest.raises(FilterError) as info:
        parse_filter(text)
    assert fragment in str(info.value)
    assert info.value.position == position


@pytest.mark.parametrize(
    "data",
    [
        {"and": []},
        {"field": "city", "op": "like", "value": 1},
        {"field": "city", "op": "=", "value": None},
        {"field": "city", "op": "=", "value": [1]},
        {"field": "last_seen_at", "op": ">", "value": "abc"},
        {"field": "city", "op": "exists", "value": 1},
        {"field": "city", "op": "in", "value": []},
        {"nope": 1},
        [1],
    ],
)
def test_bad_json_trees_raise_filter_errors(data):
    with pytest.raises(FilterError):
        FilterTree.from_json(data)


def test_compile_never_puts_values_into_sql_text():
    evil = "x' OR 1=1 --"
    for dialect in ("postgresql", "sqlite"):
        expr = compile_filter(
            f'city = "{evil}" or username icontains "{evil}" or tags contains "{evil}"',
            dialect=dialect,
            now=NOW,
        )
        assert evil not in str(expr)


def test_unknown_and_cyclic_segments_are_filter_errors():
    with pytest.raises(FilterError, match="unknown segment 'nope'"):
        compile_filter('segment:"nope"', dialect="sqlite")
    loop = {"a": parse_filter('segment:"b"'), "b": parse_filter('segment:"a"')}
    with pytest.raises(FilterError, match="refers to itself"):
        compile_filter('segment:"a"', dialect="postgresql", segments=loop)


def test_dates_without_time_mean_the_whole_day():
    user = {"created_at": "2026-01-31T18:00:00+00:00", "markers": {"d": "2026-01-31T18:00:00"}}
    assert matches("created_at = 2026-01-31", user)
    assert matches("created_at <= 2026-01-31", user)
    assert not matches("created_at > 2026-01-31", user)
    assert matches("created_at >= 2026-01-31T17:00Z", user)
    assert matches("d = 2026-01-31 and d < 2026-02-01", user)
    assert matches("created_at < -1d", user, now=NOW)
    assert not matches("created_at > -1d", user, now=NOW)


def test_negations_match_users_without_the_key():
    nobody = {"markers": {}}
    assert not matches('city = "Москва"', nobody)
    assert matches('city != "Москва"', nobody)
    assert matches('tags not contains "spam"', nobody)
    assert matches("city not exists", nobody)


def test_json_semantics_are_type_strict():
    user = {"markers": {"score": "50", "vip": "true", "tags": ["a", 1, True], "s": "yoga class"}}
    assert not matches("score = 50", user)
    assert matches('score = "50"', user)
    assert not matches("vip", user)
    assert matches("tags contains 1 and tags contains true and tags contains \"a\"", user)
    assert not matches('tags contains "1"', user)
    assert matches('s contains "yoga"', user)
    assert not matches('tags = "a"', user)
