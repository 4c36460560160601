"""Automation progress on /metrics, on both databases: users entered, steps by kind, runs
completed and stopped (counters), and runs due now (a gauge read from the database at scrape
time) move as a flow runs on the injected clock."""

from __future__ import annotations

from relove.automations.service import count_due_runs
from relove.db.engine import create_session_factory
from relove.ops.endpoints import Endpoints
from relove.users.service import set_values
from tests.automations.conftest import bot_texts, make_runner, new_users
from tests.automations.test_runs import WELCOME, settle
from tests.ops.scrape import sample, scrape


async def test_progress_counters_and_due_runs_move(db, sandbox_client, api, clock) -> None:
    endpoints = Endpoints(collectors=[lambda: count_due_runs(db, clock())])
    runner = make_runner(db, api, WELCOME, clock)
    await runner.tick()
    before = await scrape(endpoints)

    def moved(now: str, name: str, **labels: str) -> float:
        return sample(now, name, **labels) - sample(before, name, **labels)

    await new_users(db, sandbox_client, [531, 532, 533])
    await settle(runner, lambda: all_greeted(sandbox_client))
    now = await scrape(endpoints)
    assert moved(now, "relove_automation_entered_total", automation="welcome") == 3
    assert moved(now, "relove_automation_steps_total", automation="welcome", kind="send") == 3
    assert sample(now, "relove_automation_runs_due") == 0  # all wait a day

    async with create_session_factory(db).begin() as s:
        await set_values(s, 533, {"unsubscribed": True})
    clock.advance(days=1, seconds=1)
    assert sample(await scrape(endpoints), "relove_automation_runs_due") == 3
    await runner.tick()
    clock.advance(days=2, seconds=1)
    await runner.tick()
    now = await scrape(endpoints)
    assert sample(now, "relove_automation_runs_due") == 0
    assert moved(now, "relove_automation_completed_total", automation="welcome") == 2
    assert moved(now, "relove_automation_stopped_total", automation="welcome") == 1
    assert moved(now, "relove_automation_steps_total", automation="welcome", kind="tag") == 2


async def all_greeted(client) -> bool:  # type: ignore[no-untyped-def]
    return all([await bot_texts(client, u) for u in (531, 532, 533)])
