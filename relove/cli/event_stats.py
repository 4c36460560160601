"""`relove stats funnel|retention|events`: analytics over the history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import typer
from rich.table import Table
from rich.text import Text

from relove.analytics.events import (
    EventCount,
    Funnel,
    Retention,
    event_counts,
    funnel,
    parse_duration,
    retention,
)
from relove.cli.common import console, open_db, print_json, run, settings
from relove.events import check_name
from relove.segments import parse_filter

FilterOpt = Annotated[
    str | None, typer.Option("--filter", "-f", help="Only users matching this filter.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def funnel_cmd(
    steps: Annotated[list[str], typer.Argument(help="Event names, in order (2–10).")],
    within: Annotated[
        str, typer.Option("--within", help="Each user's window from step 1: 30m, 12h, 7d …")
    ] = "7d",
    since: Annotated[
        str, typer.Option("--since", help="Step 1 in this period before now: 30d, 12w …")
    ] = "30d",
    filter_text: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """An ordered funnel: users who did each step after the previous one, within --within of
    their first step 1 in the last --since."""
    for step in steps:
        check_name(step)
    window, period = parse_duration(within), parse_duration(since)
    if filter_text is not None:
        parse_filter(filter_text)
    now = datetime.now(UTC)

    async def _funnel() -> Funnel:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await funnel(session, list(steps), within=window, since=now - period,
                                until=now, flt=filter_text)  # fmt: skip

    f = run(_funnel())
    if as_json:
        print_json(f.to_dict())
        return
    table = Table(title=f"funnel, step 1 in the last {since}, within {within}",
                  title_justify="left")  # fmt: skip
    for column in ("#", "event", "users", "of step 1", "of previous"):
        table.add_column(column, justify="left" if column == "event" else "right")
    for i, s in enumerate(f.steps, start=1):
        table.add_row(str(i), Text(s.name), str(s.users), f"{s.conversion:.1%}",
                      f"{s.from_previous:.1%}")  # fmt: skip
    console.print(table)


def retention_cmd(
    period: Annotated[
        str, typer.Option("--period", help="Cohorts and activity by day, week or month.")
    ] = "week",
    cohorts: Annotated[int, typer.Option("--cohorts", min=1, max=60)] = 8,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="What counts as active (repeatable); default: the "
                     "user's own actions (messages, commands, buttons, links)."),
    ] = None,
    filter_text: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cohorts by first seen, and the share of each active in every later period."""
    if period not in ("day", "week", "month"):
        raise typer.BadParameter("expected day, week or month", param_hint="--period")
    for name in event or []:
        check_name(name)
    if filter_text is not None:
        parse_filter(filter_text)
    p: Literal["day", "week", "month"] = period  # type: ignore[assignment]

    async def _retention() -> Retention:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await retention(session, period=p, cohorts=cohorts, events=event,
                                   flt=filter_text)  # fmt: skip

    r = run(_retention())
    if as_json:
        print_json(r.to_dict())
        return
    table = Table(title=f"retention by {period} (cohort: first seen)", title_justify="left")
    table.add_column("cohort")
    table.add_column("users", justify="right")
    for k in range(cohorts):
        table.add_column(f"+{k}", justify="right")
    for c in r.cohorts:
        shares = [f"{s:.0%}" if c.users else "—" for s in c.shares]
        table.add_row(c.start.isoformat(), str(c.users), *shares)
    console.print(table)


def events_cmd(
    name: Annotated[
        str | None, typer.Option("--name", help="Only these events: marker.*, command.used …")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="day or week")] = "day",
    days: Annotated[int, typer.Option("--days", min=1, max=366)] = 14,
    filter_text: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Events and distinct users per name, by UTC day or week."""
    if by not in ("day", "week"):
        raise typer.BadParameter("expected day or week", param_hint="--by")
    if filter_text is not None:
        parse_filter(filter_text)
    grouping: Literal["day", "week"] = by  # type: ignore[assignment]

    async def _counts() -> list[EventCount]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await event_counts(session, names=name, by=grouping, days=days,
                                      flt=filter_text)  # fmt: skip

    counts = run(_counts())
    if as_json:
        print_json([c.to_dict() for c in counts])
        return
    table = Table(title=f"events by {by}, last {days} days (UTC)", title_justify="left")
    for column in (by, "event", "events", "users"):
        table.add_column(column, justify="right" if column in ("events", "users") else "left")
    for c in counts:
        table.add_row(c.period.isoformat(), Text(c.name), str(c.events), str(c.users))
    if not counts:
        table.add_row("—", "", "0", "0")
    console.print(table)


__all__ = ["events_cmd", "funnel_cmd", "retention_cmd"]


def register(stats_app: typer.Typer) -> None:
    """Add these commands to `relove stats`."""
    stats_app.command("funnel")(funnel_cmd)
    stats_app.command("retention")(retention_cmd)
    stats_app.command("events")(events_cmd)
