"""Gender from first names: accuracy on a labelled list, and a storage rule that never
overwrites a gender set by an admin, the user or a scenario."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import update

from relove.conversation.gender import GenderGuesser, infer_and_store
from relove.db.models import Gender, User
from relove.users.service import get_user_documents

NAMES = Path(__file__).with_name("data") / "names.tsv"
GUESSER = GenderGuesser()


def labelled() -> list[tuple[str, str]]:
    rows = []
    for line in NAMES.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, gender = line.rsplit("\t", 1)
        rows.append((name, gender.strip()))
    return rows


def accuracy_report() -> dict[str, float]:
    rows = labelled()
    answered = [(n, g, GUESSER.guess(n)) for n, g in rows]
    given = [(n, g, a) for n, g, a in answered if a is not None]
    correct = sum(1 for _, g, a in given if a == g)
    return {
        "names": len(rows),
        "coverage": len(given) / len(rows),
        "precision": correct / len(given),
        "accuracy": correct / len(rows),
        "wrong": [n for n, g, a in given if a != g],  # type: ignore[dict-item]
    }


def test_accuracy_on_labelled_names(record_property, capsys):
    report = accuracy_report()
    record_property("gender_accuracy", report)
    with capsys.disabled():
        sys.stdout.write(
            f"\ngender inference on {report['names']} labelled names: "
            f"coverage {report['coverage']:.1%}, precision {report['precision']:.1%}, "
            f"accuracy {report['accuracy']:.1%}; wrong: {report['wrong']}\n"
        )
    # A wrong gender is worse than none: precision is the gate.
    assert report["precision"] >= 0.97
    assert report["coverage"] >= 0.85


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Анна", "female"),
        ("Дмитрий", "male"),
        ("  Ольга 🌸", "female"),
        ("Саша", None),  # either
        ("Женя", None),
        ("Alex", "male"),
        ("Kim", None),  # mostly_female is not confident
        ("🙂", None),
        ("", None),
        (None, None),
        ("X", None),
    ],
)
def test_guess(name, expected):
    assert GUESSER.guess(name) == expected


async def _user(session_factory, uid: int, first_name: str, gender=Gender.unknown) -> None:
    async with session_factory() as s:
        s.add(User(id=uid, first_name=first_name, gender=gender))
        await s.commit()


async def _read(session_factory, uid: int) -> User:
    async with session_factory() as s:
        user = await s.get(User, uid)
        assert user is not None
        return user


async def test_stores_a_confident_guess_with_provenance(session_factory):
    await _user(session_factory, 1, "Мария")
    async with session_factory() as s:
        assert await infer_and_store(s, GUESSER, 1, "Мария") is Gender.female
        await s.commit()
        docs = await get_user_documents(s, 1)
    assert (await _read(session_factory, 1)).gender is Gender.female
    assert docs["markers"]["gender_source"] == "inferred"
    assert docs["context"]["gender_tried"] == "Мария"


async def test_unsure_guess_stores_nothing_but_remembers_the_try(session_factory):
    await _user(session_factory, 1, "Саша")
    async with session_factory() as s:
        assert await infer_and_store(s, GUESSER, 1, "Саша") is None
        await s.commit()
        docs = await get_user_documents(s, 1)
    assert (await _read(session_factory, 1)).gender is Gender.unknown
    assert "gender_source" not in docs["markers"]
    assert docs["context"]["gender_tried"] == "Саша"


async def test_never_overwrites_a_set_gender(session_factory):
    await _user(session_factory, 1, "Мария", gender=Gender.male)  # set by an admin
    async with session_factory() as s:
        assert await infer_and_store(s, GUESSER, 1, "Мария") is None
        await s.commit()
    assert (await _read(session_factory, 1)).gender is Gender.male


async def test_a_concurrent_admin_write_wins(session_factory):
    """The guard is in the UPDATE itself: if an admin set the gender between reading and
    writing, the inference changes nothing."""
    await _user(session_factory, 1, "Мария")
    async with session_factory() as s:
        await s.execute(update(User).where(User.id == 1).values(gender=Gender.male))
        await s.commit()
    async with session_factory() as s:
        assert await infer_and_store(s, GUESSER, 1, "Мария") is None
        await s.commit()
        docs = await get_user_documents(s, 1)
    assert (await _read(session_factory, 1)).gender is Gender.male
    assert "gender_source" not in docs["markers"]
