"""The architecture note's own snippets (sections 2, 3 and 4) do what they say."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relove import User


async def _reload(sessions: async_sessionmaker[AsyncSession], user_id: int) -> User:
    async with sessions() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return user


async def test_section_2_in_place_edits_persist(session_factory):
    async with session_factory() as session:
        user = User(id=1, first_name="Анна")
        session.add(user)
        await session.commit()

        # Section 2, as written in the note.
        user.markers = user.markers or {}
        user.markers["city"] = "Москва"
        user.markers["VIP"] = True
        user.context = user.context or {}
        user.context["relove_context"] = "..."
        user.context["last_message"] = "..."
        await session.commit()

    stored = await _reload(session_factory, 1)
    assert stored.markers == {"city": "Москва", "VIP": True}
    assert stored.context == {"relove_context": "...", "last_message": "..."}


async def test_section_2_second_in_place_edit_is_not_dropped(session_factory):
    async with session_factory() as session:
        session.add(User(id=2, markers={"city": "Москва"}))
        await session.commit()
        user = await session.get(User, 2)
        user.markers["VIP"] = True  # a second in-place edit on a loaded, non-empty document
        await session.commit()
    assert (await _reload(session_factory, 2)).markers == {"city": "Москва", "VIP": True}


async def test_section_4_touch_updates_last_message(session_factory):
    async def update_user_on_touch(user_id: int, text: str, session: AsyncSession) -> None:
        # Section 4, as written in the note.
        user = await session.get(User, user_id)
        if not user:
            user = User(id=user_id, first_name="Анна")
            session.add(user)
        user.context = user.context or {}
        user.context["last_message"] = text
        await session.commit()

    async with session_factory() as session:
        await update_user_on_touch(3, "first", session)
    async with session_factory() as session:
        await update_user_on_touch(3, "second", session)
    assert (await _reload(session_factory, 3)).context["last_message"] == "second"


async def _seed_section_3(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        session.add_all(
            [
                User(id=10, markers={"city": "Москва", "VIP": True}),
                User(id=11, markers={"city": "Москва", "VIP": False}),
                User(id=12, markers={"city": "Казань", "VIP": True}),
                User(id=13, is_active=False, markers={"city": "Москва", "VIP": True}),
                User(id=14, markers={}),
            ]
        )
        await session.commit()


async def test_section_3_portable_filter(session_factory):
    await _seed_section_3(session_factory)
    portable = select(User.id).where(
        User.is_active == True,  # noqa: E712  (as in the note)
        User.markers["city"].as_string() == "Москва",
        User.markers["VIP"].as_boolean() == True,  # noqa: E712
    )
    async with session_factory() as session:
        assert (await session.scalars(portable)).all() == [10]


async def test_section_3_as_written_on_postgresql(session_factory, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the note's .astext form is PostgreSQL syntax (portable form tested above)")
    await _seed_section_3(session_factory)
    # Section 3, as written in the note (an async session instead of session.query).
    query = select(User).filter(
        User.is_active == True,  # noqa: E712
        User.markers["city"].astext == "Москва",
        User.markers["VIP"].astext == "true",
    )
    async with session_factory() as session:
        assert [u.id for u in (await session.scalars(query)).all()] == [10]
