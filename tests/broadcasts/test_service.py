"""Broadcast services on both databases."""

from __future__ import annotations

from sqlalchemy import text

from relove.broadcasts import service


async def test_audience_is_planned_with_its_values(session) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL never counts an audience with a generic plan (the values decide the plan)."""
    where = await service.audience(session, "city = 'Москва'")
    assert await service.count_audience(session, where) == 0
    if session.get_bind().dialect.name == "postgresql":
        mode = (await session.execute(text("SHOW plan_cache_mode"))).scalar_one()
        assert mode == "force_custom_plan"
