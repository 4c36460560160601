"""`relove broadcast …` and `relove worker`: campaigns from the shell
(thin: services do the work)."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from relove.broadcasts import service
from relove.broadcasts.content import Button, MessageContent
from relove.broadcasts.models import BroadcastStatus, MediaKind
from relove.cli.common import (
    cli_actor,
    console,
    markup_line,
    open_db,
    plain,
    print_json,
    probes,
    run,
    settings,
)
from relove.config import Settings
from relove.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

app = typer.Typer(help="Broadcasts: create, preview, start, pause, resume, cancel, status.",
                  no_args_is_help=True, epilog="Guide: docs/broadcasts.md")

IdArg = Annotated[int, typer.Argument(metavar="ID", help="The broadcast's id.")]
_ACTIVE = {BroadcastStatus.scheduled.value, BroadcastStatus.running.value}


def _parse_at(value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidInput(f"--at {value!r}: expected ISO 8601, e.g. 2026-12-01T10:00+03:00") from e
    if at.tzinfo is None:
        raise InvalidInput(f"--at {value!r}: add a timezone, e.g. 2026-12-01T10:00+03:00")
    return at


def _read_text(text: str | None, text_file: Path | None) -> str:
    if (text is None) == (text_file is None):
        raise InvalidInput("give the message with exactly one of --text or --text-file")
    if text_file is not None:
        try:
            return text_file.read_text(encoding="utf-8")
        except OSError as e:
            raise InvalidInput(f"cannot read {text_file}: {e.strerror or e}") from e
    return text or ""


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="A name for operators.")],
    filter_text: Annotated[str, typer.Option("--filter", help="The audience (segment language).")],
    text: Annotated[
        str | None, typer.Option("--text", help="Message: Telegram HTML + Jinja2.")
    ] = None,
    text_file: Annotated[
        Path | None, typer.Option("--text-file", help="Read the message from a file.")
    ] = None,
    photo: Annotated[str | None, typer.Option("--photo", help="Photo URL or file_id.")] = None,
    document: Annotated[
        str | None, typer.Option("--document", help="Document URL or file_id.")
    ] = None,
    button: Annotated[
        list[str] | None,
        typer.Option("--button", help="'label|url', repeatable; one per row."),
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Schedule (ISO 8601 with timezone).")
    ] = None,
    paid: Annotated[
        bool,
        typer.Option("--paid", help="allow_paid_broadcast: up to 1000 msg/s, paid in Stars."),
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option("--rate", help="Messages per second (default from settings)."),
    ] = None,
) -> None:
    """Create a broadcast (a draft, or scheduled with --at); the template is checked now."""
    if photo and document:
        raise InvalidInput("give --photo or --document, not both")
    content = MessageContent(
        text=_read_text(text, text_file),
        media_kind=MediaKind.photo if photo else MediaKind.document if document else None,
        media=photo or document,
        buttons=tuple((Button.parse(b),) for b in button or []),
    )
    scheduled_at = _parse_at(at) if at else None

    async def _create() -> tuple[int, str, int]:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            b = await service.create_broadcast(
                session, name=name, filter_text=filter_text, content=content,
                scheduled_at=scheduled_at, paid=paid, rate=rate,
            )
            where = await service.audience(session, filter_text)
            count = await service.count_audience(session, where)
            return b.id, b.status.value, count

    broadcast_id, status, count = run(_create())
    console.print(f"broadcast {broadcast_id} created ({status}), {count} recipients now")
    if status == BroadcastStatus.draft.value:
        console.print(
            f"next: relove broadcast preview {broadcast_id}"
            f" · relove broadcast start {broadcast_id}"
        )


@app.command()
def preview(broadcast_id: IdArg) -> None:
    """The recipient count and the message rendered for three sample recipients."""

    async def _preview() -> service.Preview:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await service.preview(session, broadcast_id)

    p = run(_preview())
    console.print(markup_line("[bold]{name}[/bold] (#{id}, {status})", name=p.broadcast.name,
                              id=p.broadcast.id, status=p.broadcast.status.value))  # fmt: skip
    console.print(plain(f"filter: {p.broadcast.filter}"))
    console.print(f"recipients: {p.count}")
    for recipient, message in p.samples:
        console.rule(plain(f"{recipient.full_name} ({recipient.id})"), style="dim")
        if message.media_kind:
            console.print(plain(f"[{message.media_kind.value}: {message.media}]"))
        console.print(plain(message.text))
        for row in message.buttons:
            console.print(plain("  ".join(f"[{b.text} → {b.url}]" for b in row)))


@app.command()
def start(
    broadcast_id: IdArg,
    wait: Annotated[
        bool, typer.Option("--wait", help="Send from this process, with progress.")
    ] = False,
) -> None:
    """Snapshot the recipients and start; a running `relove run` or `relove worker` sends it
    (or this process, with --wait)."""

    async def _start() -> int:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            return await service.start_broadcast(session, broadcast_id, actor=cli_actor())

    count = run(_start())
    console.print(f"broadcast {broadcast_id} started: {count} recipients")
    if wait and count:
        run(_work(settings(), follow=broadcast_id))


def _control(verb: str, fn: Any, broadcast_id: int) -> None:
    async def _do() -> None:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            await fn(session, broadcast_id)

    run(_do())
    console.print(f"broadcast {broadcast_id} {verb}")


@app.command()
def pause(broadcast_id: IdArg) -> None:
    """Pause a running broadcast (messages in flight still complete)."""
    _control("paused", service.pause, broadcast_id)


@app.command()
def resume(broadcast_id: IdArg) -> None:
    """Resume a paused broadcast where it stopped."""
    _control("resumed", service.resume, broadcast_id)


@app.command()
def cancel(broadcast_id: IdArg) -> None:
    """Cancel for good; unsent deliveries stay pending."""
    _control("cancelled", service.cancel, broadcast_id)


@app.command("resend-unknown")
def resend_unknown(broadcast_id: IdArg) -> None:
    """Queue again the deliveries whose fate a crash left unknown (they may arrive twice)."""

    async def _do() -> int:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            return await service.resend_unknown(session, broadcast_id)

    console.print(f"{run(_do())} deliveries queued again")


@app.command("test")
def test_send(broadcast_id: IdArg) -> None:
    """Send the message to the admins (RELOVE_ADMIN_IDS), rendered for each of them; exits 1
    if one of them did not get it."""
    from relove.broadcasts.telegram import send_test
    from relove.telegram.client import BotApiClient
    from relove.telegram.ratelimit import build_limiter

    s = settings()
    if not s.admin_ids:
        raise InvalidInput("RELOVE_ADMIN_IDS is empty: no one to test-send to")
    client = BotApiClient.from_settings(s)  # refuses with one line when no token is set

    async def _do() -> list[tuple[str, bool]]:
        limiter = build_limiter(s)
        try:
            async with open_db(s) as (_, sessions), sessions() as session:
                return await send_test(client, limiter, session, broadcast_id, s.admin_ids)
        finally:
            await client.close()
            await limiter.close()

    results = run(_do())
    for line, _ in results:
        console.print(plain(line))
    if not all(sent for _, sent in results):
        # A test that did not reach every admin is a failed test (scripts check the exit code).
        raise typer.Exit(1)


def _stats_table(st: service.BroadcastStats) -> Table:
    table = Table(show_header=False, box=None)
    for key, value in st.to_dict().items():
        if value is not None:
            table.add_row(key, plain(value))
    return table


@app.command()
def status(
    broadcast_id: IdArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="A live progress bar.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Stats: targeted, sent, blocked, failed, unknown, pending, current rate, ETA."""

    async def _once() -> service.BroadcastStats:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await service.stats(session, broadcast_id)

    if follow:
        run(_follow(settings(), broadcast_id))
        return
    st = run(_once())
    if as_json:
        print_json(st.to_dict())
    else:
        console.print(_stats_table(st))


async def _follow(s: Settings, broadcast_id: int, until: asyncio.Task[Any] | None = None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from relove.broadcasts.notify import format_eta

    async with open_db(s) as (_, sessions):
        with Progress(
            TextColumn("#{task.fields[id]} {task.fields[status]}", markup=False), BarColumn(),
            MofNCompleteColumn(),
            TextColumn("sent {task.fields[sent]} · blocked {task.fields[blocked]} · failed "
                       "{task.fields[failed]} · unknown {task.fields[unknown]} · "
                       "{task.fields[rate]}/s · ETA {task.fields[eta]}", markup=False),
            console=console,
        ) as progress:
            task = None
            while True:
                async with sessions() as session:
                    st = await service.stats(session, broadcast_id)
                fields: dict[str, Any] = dict(
                    id=st.id, status=st.status, sent=st.sent, blocked=st.blocked,
                    failed=st.failed, unknown=st.unknown, rate=f"{st.rate:.1f}",
                    eta=format_eta(st.eta_seconds),
                )
                if task is None:
                    task = progress.add_task("", total=max(st.targeted, 1), **fields)
                progress.update(task, completed=st.done, total=max(st.targeted, 1), **fields)
                finished = st.status not in _ACTIVE or (until is not None and until.done())
                if finished:
                    break
                await asyncio.sleep(0.5)
    console.print(_stats_table(st))


@app.command("list")
def list_() -> None:
    """Broadcasts, newest first."""

    async def _list() -> list[dict[str, Any]]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            items = await service.list_broadcasts(session)
            return [
                {"id": b.id, "name": b.name, "status": b.status.value, "filter": b.filter,
                 "scheduled_at": b.scheduled_at, "created_at": b.created_at}
                for b in items
            ]

    table = Table("id", "name", "status", "filter", "scheduled", "created")
    for b in run(_list()):
        table.add_row(str(b["id"]), plain(b["name"]), b["status"], plain(b["filter"]),
                      f"{b['scheduled_at']:%Y-%m-%d %H:%M %Z}" if b["scheduled_at"] else "",
                      f"{b['created_at']:%Y-%m-%d %H:%M}")
    console.print(table)


# --- workers -------------------------------------------------------------------------------------
async def _work(s: Settings, *, follow: int | None = None) -> None:
    """Run due broadcasts until SIGINT/SIGTERM (or, with ``follow``, until that one stops).

    The worker sends over the lean Bot API client and never imports aiogram (its models alone
    would take most of the worker's memory: docs/benchmarks.md, Broadcasts); the bot's
    interactive path is the only aiogram user.
    """
    from relove.bot.texts import Texts
    from relove.broadcasts.notify import ProgressMessages
    from relove.broadcasts.runner import BroadcastRunner
    from relove.broadcasts.telegram import HttpSend
    from relove.events.retention import HistoryMaintenance
    from relove.telegram.client import BotApiClient
    from relove.telegram.ratelimit import build_limiter

    client = BotApiClient.from_settings(s)  # refuses with one line when no token is set
    limiter = build_limiter(s)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with open_db(s) as (engine, _), probes(s, engine, collectors=_gauges(s, engine)):
            runner = BroadcastRunner(
                engine, lambda paid: HttpSend(client, paid=paid), limiter, s,
                progress=ProgressMessages(client, Texts.load(s.language, s.texts_dir)),
            )
            # Start-up objects out of the collector's reach: without it, each full collection
            # walks them all and stalls sending (docs/benchmarks.md, Broadcasts). The
            # collection thresholds stay at Python's defaults: this process is sized by memory.
            gc.collect()
            gc.freeze()
            automations = None
            if s.automations_file is not None:  # a broken file stops start-up with its lines
                from relove.automations.runner import AutomationRunner

                automation_runner = AutomationRunner.from_settings(
                    engine, HttpSend(client), limiter, s,
                    labels=Texts.load(s.language, s.texts_dir))
                automations = asyncio.create_task(automation_runner.run_forever(stop))
            worker = asyncio.create_task(runner.run_forever(stop))
            history = asyncio.create_task(HistoryMaintenance.from_settings(engine, s)
                                          .run_forever(stop))  # fmt: skip
            hooks = None
            if s.webhooks_enabled:
                from relove.webhooks.worker import WebhookWorker, tell_owners

                texts = Texts.load(s.language, s.texts_dir)
                hooks = asyncio.create_task(WebhookWorker(
                    engine, s, on_disabled=tell_owners(client.call, texts, s.admin_ids),
                ).run_forever(stop))
            if follow is not None:
                try:
                    await _follow(s, follow, until=worker)
                finally:
                    stop.set()
            await worker
            await history
            if automations is not None:
                await automations
            if hooks is not None:
                await hooks
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await client.close()
        await limiter.close()


def _gauges(s: Settings, engine: AsyncEngine) -> list[Callable[[], Awaitable[object]]]:
    """The worker's gauges read at scrape time: broadcast deliveries left, due automation
    runs (docs/operations.md)."""
    from relove.broadcasts.store import count_pending_deliveries

    gauges: list[Callable[[], Awaitable[object]]] = [lambda: count_pending_deliveries(engine)]
    if s.automations_file is not None:
        from relove.automations.service import count_due_runs

        gauges.append(lambda: count_due_runs(engine))
    return gauges


def worker() -> None:
    """Send scheduled and started broadcasts (alongside or instead of `relove run`)."""
    s = settings()
    console.print("broadcast worker running; Ctrl+C stops it after messages in flight")
    run(_work(s))
