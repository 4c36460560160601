"""`relove events track|prune` and `relove users history`: history from the shell."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from relove.cli.common import cli_actor, console, open_db, print_json, run, settings
from relove.errors import InvalidInput
from relove.events import EventSource, check_name, record
from relove.events.retention import PruneReport, prune
from relove.events.timeline import Page, timeline
from relove.users.paths import parse_assignment

app = typer.Typer(help="History: record custom events, apply the retention.", no_args_is_help=True,
                  epilog="Guide: docs/events.md")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidInput(f"--at {value!r} is not an ISO date-time") from e
    if at.tzinfo is None:
        raise InvalidInput("--at needs a timezone, e.g. 2026-05-01T10:00:00+00:00")
    return at


@app.command()
def track(
    user_id: int,
    name: Annotated[str, typer.Argument(help="object.action, e.g. order.paid")],
    props: Annotated[
        list[str] | None, typer.Argument(help="key=value … (values parsed as JSON)")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="When (ISO, with timezone).")] = None,
    dedupe: Annotated[
        str | None, typer.Option("--dedupe", help="Skip if this key was used the same day.")
    ] = None,
) -> None:
    """Record a custom event for a user (source cli)."""
    check_name(name)
    values: dict[str, Any] = {}
    for item in props or []:
        key, value = parse_assignment(item)
        if "." in key:
            raise InvalidInput(f"event props are flat: {key!r} has a dot")
        values[key] = value
    when = _when(at)

    async def _track() -> None:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            await record(session, user_id, name, values, source=EventSource.cli,
                         actor=cli_actor(), at=when, dedupe_key=dedupe)  # fmt: skip

    run(_track())
    console.print(f"recorded {name} for user {user_id}", markup=False, highlight=False)


@app.command("prune")
def prune_cmd(as_json: JsonOpt = False) -> None:
    """Apply RELOVE_EVENTS_RETENTION_DAYS and RELOVE_MESSAGES_RETENTION_DAYS now (and create
    the coming months' partitions on PostgreSQL)."""
    s = settings()

    async def _prune() -> PruneReport:
        async with open_db(s) as (engine, _):
            return await prune(engine, events_days=s.events_retention_days,
                               messages_days=s.messages_retention_days)  # fmt: skip

    report = run(_prune())
    if as_json:
        print_json(report.to_dict())
        return
    lines = [
        f"events before {report.events_cutoff:%Y-%m-%d %H:%M} UTC: "
        + (f"{len(report.partitions_dropped)} monthly partitions dropped"
           if report.partitions_dropped or report.partitions_created
           else f"{report.events_deleted} deleted"),
        f"messages before {report.messages_cutoff:%Y-%m-%d %H:%M} UTC: "
        f"{report.messages_deleted} deleted",
    ]  # fmt: skip
    if report.partitions_created:
        lines.append("partitions created: " + ", ".join(report.partitions_created))
    for line in lines:
        console.print(line, markup=False, highlight=False)


def _compact(props: dict[str, Any], limit: int = 120) -> str:
    text = json.dumps(props, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def history_table(page: Page, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("at (UTC)", "event", "props", "by"):
        table.add_column(column, overflow="fold", no_wrap=column == "at (UTC)")
    for e in page.events:
        by = e.source + (f" · {e.actor}" if e.actor else "")
        # Text cells: names, props and actors are data, never Rich markup.
        table.add_row(Text(f"{e.at:%Y-%m-%d %H:%M:%S}"), Text(e.name), Text(_compact(e.props)),
                      Text(by))  # fmt: skip
    return table


def history(
    user_id: int,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 20,
    name: Annotated[
        str | None, typer.Option("--name", help="Only these events: marker.*, command.used, …")
    ] = None,
    cursor: Annotated[str | None, typer.Option("--cursor", help="The page after this one.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A user's history, newest first (a page; --cursor continues)."""

    async def _history() -> Page:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await timeline(session, user_id, limit=limit, cursor=cursor, names=name)

    page = run(_history())
    if as_json:
        print_json(page.to_dict())
        return
    if not page.events:
        console.print(f"no events for user {user_id}", markup=False, highlight=False)
        return
    console.print(history_table(page, f"history of user {user_id}"))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}", markup=False, highlight=False)
