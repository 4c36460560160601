"""`relove stats` (overview) and `relove stats breakdown FIELD`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from relove.analytics import Breakdown, Overview, breakdown, overview
from relove.cli.common import console, open_db, plain, print_json, run, settings
from relove.segments import field_from_text, parse_filter

app = typer.Typer(
    help="Analytics: totals, new users, activity, breakdowns by any column or marker.",
    invoke_without_command=True,
    epilog="Guide: docs/analytics.md",
)

FilterOpt = Annotated[
    str | None, typer.Option("--filter", "-f", help="Only users matching this filter.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def _value(value: Any) -> Text:
    if value is None:
        return Text("(not set)")
    return plain(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def breakdown_table(b: Breakdown, title: str | None = None) -> Table:
    table = Table(title=plain(title or f"users by {b.field}: {b.total}"), title_justify="left")
    table.add_column(plain(b.field), overflow="fold")
    table.add_column("users", justify="right")
    table.add_column("share", justify="right")
    for row in b.rows:
        table.add_row(_value(row.value), str(row.count), f"{row.share:.1%}")
    if b.other:
        table.add_row(f"(other: {b.distinct - len(b.rows)} values)", str(b.other), "",
                      style="dim")  # fmt: skip
    if b.not_set:
        share = b.not_set / b.total if b.total else 0
        table.add_row("(not set)", str(b.not_set), f"{share:.1%}", style="dim")
    return table


def overview_tables(o: Overview) -> list[Table]:
    head = Table(title="users", title_justify="left", show_header=False)
    head.add_column("", style="bold")
    head.add_column("", justify="right")
    a = o.activity
    for key, value in [("total", o.total), ("active", o.active), ("inactive", o.inactive),
                       ("DAU (24 h)", a.dau), ("WAU (7 days)", a.wau), ("MAU (30 days)", a.mau)]:
        head.add_row(key, str(value))  # fmt: skip
    days = Table(title=f"new users, last {o.days} days (UTC)", title_justify="left")
    days.add_column("day")
    days.add_column("new", justify="right")
    for d, n in o.new_per_day:
        days.add_row(d.isoformat(), str(n))
    gender = Table(title="by gender", title_justify="left")
    gender.add_column("gender")
    gender.add_column("users", justify="right")
    for g, n in o.by_gender.items():
        gender.add_row(plain(g), str(n))
    return [head, days, gender, breakdown_table(o.by_source, title="by source")]


@app.callback()
def stats(
    ctx: typer.Context,
    days: Annotated[int, typer.Option("--days", min=1, max=366)] = 14,
    filter_text: FilterOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Overview: totals, active/inactive, new users per day, by gender, by source, activity."""
    if ctx.invoked_subcommand is not None:
        return
    if filter_text is not None:
        parse_filter(filter_text)

    async def _overview() -> Overview:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await overview(session, days=days, flt=filter_text)

    o = run(_overview())
    if as_json:
        print_json(o.to_dict())
        return
    for table in overview_tables(o):
        console.print(table)


@app.command("breakdown")
def breakdown_cmd(
    field: Annotated[str, typer.Argument(help="A column (gender) or marker path (interests).")],
    filter_text: FilterOpt = None,
    top: Annotated[int, typer.Option("--top", "-n", min=1, max=1000)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Users by the values of FIELD, most frequent first (list markers count each element)."""
    field_from_text(field)
    if filter_text is not None:
        parse_filter(filter_text)

    async def _breakdown() -> Breakdown:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await breakdown(session, field, filter_text, top=top)

    b = run(_breakdown())
    if as_json:
        print_json(b.to_dict())
    else:
        console.print(breakdown_table(b))
