"""Ranking: eligibility by `when`, overlap with interests, rotation past recently shown."""

from __future__ import annotations

from relove.conversation.catalog import parse_catalog, rank
from relove.conversation.yamlfile import load_yaml

CATALOG = parse_catalog(
    load_yaml(
        """
items:
  - {id: a, title: A, text: t, tags: [meditation]}
  - {id: b, title: B, text: t, tags: [meditation, body]}
  - {id: c, title: C, text: t, tags: [psychology]}
  - {id: d, title: D, text: t, tags: [community], when: 'city = "Москва"'}
  - {id: e, title: E, text: t, tags: [Body, creativity]}
"""
    )
)


def user(interests=None, city=None, recommended=None):
    markers = {}
    if interests is not None:
        markers["interests"] = interests
    if city:
        markers["city"] = city
    return {
        "id": 1,
        "gender": "unknown",
        "markers": markers,
        "context": {"recommended": recommended or []},
    }


def ids(items):
    return [i.id for i in items]


def test_ranked_by_overlap_then_catalog_order():
    assert ids(rank(CATALOG, user(["body", "meditation"]), k=3)) == ["b", "a", "e"]
    assert ids(rank(CATALOG, user(["creativity"]), k=2)) == ["e", "a"]
    assert ids(rank(CATALOG, user(), k=2)) == ["a", "b"]


def test_when_filters_items():
    assert "d" not in ids(rank(CATALOG, user(["community"]), k=10))
    assert ids(rank(CATALOG, user(["community"], city="Москва"), k=1)) == ["d"]


def test_recently_shown_rotate_to_the_back_least_recent_first():
    u = user(["meditation"], recommended=["a", "b"])
    assert ids(rank(CATALOG, u, k=3)) == ["c", "e", "a"]
    u = user(["meditation"], recommended=["b", "c", "e", "a"])
    assert ids(rank(CATALOG, u, k=2)) == ["b", "c"]


def test_interests_as_text_and_bad_shapes_are_tolerated():
    assert ids(rank(CATALOG, user("psychology"), k=1)) == ["c"]
    assert ids(rank(CATALOG, user({"x": 1}), k=1)) == ["a"]
