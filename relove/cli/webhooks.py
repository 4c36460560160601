"""`relove webhooks add|list|show|disable|enable|rotate-secret|test|deliveries|replay`:
outbound webhooks (docs/webhooks.md). Deliveries are sent by `relove worker`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from relove.cli.common import (
    cli_actor,
    console,
    err_console,
    markup_line,
    open_db,
    plain,
    print_json,
    run,
    settings,
)
from relove.errors import InvalidInput
from relove.webhooks import service

app = typer.Typer(help="Outbound webhooks: signed event deliveries to HTTP endpoints.",
                  no_args_is_help=True, epilog="Guide: docs/webhooks.md")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]
IdArg = Annotated[int, typer.Argument(help="The endpoint's id (`relove webhooks list`).")]
T = TypeVar("T")


def _unit(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one session, committed when it succeeds."""

    async def _go() -> T:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            result = await work(session)
            await session.commit()
            return result

    return run(_go())


def _show_secret(endpoint_id: int, secret: str, what: str) -> None:
    err_console.print(
        f"endpoint {endpoint_id}: {what}; store the signing secret now, it is not shown again:",
        markup=False, highlight=False,
    )
    console.print(secret, markup=False, highlight=False)


@app.command()
def add(
    url: Annotated[str, typer.Argument(help="Where to POST, https://…")],
    events: Annotated[str, typer.Option(
        "--events", help="Comma-separated event names or patterns: user.*,marker.changed,*")],
    filter_text: Annotated[str | None, typer.Option(
        "--filter", help="Only events of users matching this segment filter.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="A note.")] = None,
) -> None:
    """Add an endpoint; prints its id and signing secret ONCE."""
    allow = settings().webhooks_allow_private

    async def _add(session: AsyncSession) -> tuple[int, str]:
        created = await service.add_endpoint(
            session, url, events, filter_text=filter_text, description=description,
            actor=cli_actor(), allow_private=allow,
        )
        return created.endpoint.id, created.secret

    endpoint_id, secret = _unit(_add)
    _show_secret(endpoint_id, secret, "added")


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List endpoints (never their secrets)."""

    async def _list(session: AsyncSession) -> list[dict[str, Any]]:
        return [e.to_dict() for e in await service.list_endpoints(session)]

    rows = _unit(_list)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "url", "events", "filter", "enabled", "description")
    for r in rows:
        table.add_row(str(r["id"]), plain(r["url"]), plain(",".join(r["events"])),
                      plain(r["filter"] or ""), "yes" if r["enabled"] else
                      plain(f"no: {r['disabled_reason'] or ''}"), plain(r["description"] or ""))
    console.print(table)


@app.command()
def show(endpoint_id: IdArg, as_json: JsonOpt = False) -> None:
    """One endpoint (without its secret)."""

    async def _show(session: AsyncSession) -> dict[str, Any]:
        return (await service.get_endpoint(session, endpoint_id)).to_dict()

    row = _unit(_show)
    if as_json:
        print_json(row)
        return
    for key, value in row.items():
        shown = ",".join(value) if isinstance(value, list) else value
        console.print(markup_line("[bold]{k}[/bold]: {v}", k=key,
                                  v="" if shown is None else shown))


def _set_enabled(endpoint_id: int, enabled: bool) -> None:
    async def _set(session: AsyncSession) -> None:
        await service.set_enabled(session, endpoint_id, enabled)

    _unit(_set)
    console.print(f"endpoint {endpoint_id} {'enabled' if enabled else 'disabled'}")


@app.command()
def disable(endpoint_id: IdArg) -> None:
    """Stop delivering to an endpoint (events meanwhile are not queued; see replay)."""
    _set_enabled(endpoint_id, False)


@app.command()
def enable(endpoint_id: IdArg) -> None:
    """Deliver to an endpoint again (its queued retries resume)."""
    _set_enabled(endpoint_id, True)


@app.command("rotate-secret")
def rotate_secret(endpoint_id: IdArg) -> None:
    """A new signing secret, printed ONCE; the old one still signs for
    RELOVE_WEBHOOKS_ROTATION_HOURS (a second signature)."""
    hours = settings().webhooks_rotation_hours

    async def _rotate(session: AsyncSession) -> str:
        _, secret = await service.rotate_secret(session, endpoint_id,
                                                grace=timedelta(hours=hours))
        return secret

    secret = _unit(_rotate)
    _show_secret(endpoint_id, secret, f"new secret (the old one signs for {hours:g} more hours)")


@app.command()
def test(endpoint_id: IdArg) -> None:
    """Queue a `webhook.test` ping (sent by `relove worker`; see `deliveries`)."""

    async def _test(session: AsyncSession) -> str:
        return (await service.send_test(session, endpoint_id)).msg_id

    msg_id = _unit(_test)
    console.print(f"ping {msg_id} queued for endpoint {endpoint_id}")


@app.command()
def deliveries(
    endpoint_id: IdArg,
    failed: Annotated[bool, typer.Option("--failed", help="Only those that gave up.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """An endpoint's deliveries, newest first: status, attempts, last answer."""

    async def _list(session: AsyncSession) -> list[dict[str, Any]]:
        return [service.delivery_dict(d) for d in
                await service.list_deliveries(session, endpoint_id, failed=failed, limit=limit)]

    rows = _unit(_list)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "webhook-id", "event", "status", "attempts", "last", "next", "created")
    for r in rows:
        last = r["last_error"] or (str(r["last_status"]) if r["last_status"] else "")
        table.add_row(str(r["id"]), r["webhook_id"], plain(r["event"]), r["status"],
                      str(r["attempts"]), plain(last[:80]), r["next_attempt_at"] or "",
                      r["created_at"][:19])
    console.print(table)


def _parse_time(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"--since {value[:40]!r} is not a time such as 2026-12-01T10:00 (UTC by default)"
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


@app.command()
def replay(
    endpoint_id: IdArg,
    event: Annotated[int | None, typer.Option("--event", help="One event's id.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Every matching event since this time (ISO, UTC by default).")] = None,
) -> None:
    """Send events again (same webhook-id) — one, or all since a time (at most 10,000)."""
    if (event is None) == (since is None):
        raise InvalidInput("give either --event EVENT_ID or --since TIME")
    when = _parse_time(since) if since is not None else None

    async def _replay(session: AsyncSession) -> int:
        return await service.replay(session, endpoint_id, event_id=event, since=when)

    count = _unit(_replay)
    console.print(f"{count} message(s) queued for endpoint {endpoint_id}")
