"""`relove segment …` (saved segments) and `relove users find` (users matching a filter)."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from relove.cli.common import console, markup_line, open_db, plain, print_json, run, settings
from relove.errors import InvalidInput
from relove.segments import (
    count_users,
    delete_segment,
    find_users,
    get_segment,
    list_segments,
    parse_filter,
    save_segment,
)

app = typer.Typer(help="Saved segments: named filters, usable as segment:\"name\".",
                  no_args_is_help=True, epilog="Guide: docs/segments.md")  # fmt: skip

FilterArg = Annotated[
    str, typer.Argument(metavar="FILTER", help='e.g. \'city = "Москва" and VIP\'')
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]

CSV_COLUMNS = ["id", "username", "first_name", "last_name", "is_active", "gender",
               "created_at", "updated_at", "last_seen_at", "markers", "context"]  # fmt: skip


def _compact(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def users_table(users: list[dict[str, Any]], title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("id", "username", "name", "gender", "active", "last seen", "markers"):
        table.add_column(name, overflow="fold", no_wrap=name in ("id", "last seen"))
    for u in users:
        name = " ".join(p for p in (u["first_name"], u["last_name"]) if p)
        table.add_row(
            str(u["id"]),
            plain(f"@{u['username']}" if u["username"] else ""),
            plain(name),
            u["gender"],
            "yes" if u["is_active"] else "no",
            (u["last_seen_at"] or "")[:16].replace("T", " "),
            plain(_compact(u["markers"])),
            end_section=False,
        )
    return table


def find(
    filter_text: FilterArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=100_000)] = 20,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Find users matching FILTER (first --limit, in id order)."""
    if as_json and as_csv:
        raise InvalidInput("choose one of --json and --csv")
    parse_filter(filter_text)  # a bad filter fails before the database is opened

    async def _find() -> tuple[int, list[dict[str, Any]]]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            total = await count_users(session, filter_text)
            users = await find_users(session, filter_text, limit=limit)
            return total, [u.to_dict() for u in users]

    total, users = run(_find())
    if as_json:
        print_json({"count": total, "users": users})
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for u in users:
            row = dict(u)
            row["markers"] = json.dumps(u["markers"], ensure_ascii=False)
            row["context"] = json.dumps(u["context"], ensure_ascii=False)
            writer.writerow(row)
    else:
        shown = f"first {len(users)} of {total}" if total > len(users) else str(total)
        console.print(users_table(users, title=f"{total} users match ({shown} shown)"))


@app.command()
def save(
    name: str,
    filter_text: FilterArg,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
) -> None:
    """Save (or replace) a segment."""
    parse_filter(filter_text)

    async def _save() -> tuple[dict[str, Any], int]:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            seg = await save_segment(session, name, filter_text, description=description)
            return seg.to_dict(), await count_users(session, f"segment:{json.dumps(seg.name)}")

    seg, count = run(_save())
    console.print(markup_line("saved segment [bold]{name}[/bold]: {count} users match",
                              name=seg["name"], count=count))  # fmt: skip


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List saved segments."""

    async def _list() -> list[dict[str, Any]]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return [s.to_dict() for s in await list_segments(session)]

    segments = run(_list())
    if as_json:
        print_json(segments)
        return
    table = Table(title=f"{len(segments)} segments", title_justify="left")
    for col in ("name", "filter", "description", "updated"):
        table.add_column(col, overflow="fold")
    for s in segments:
        table.add_row(plain(s["name"]), plain(s["filter"]), plain(s["description"]),
                      (s["updated_at"] or "")[:16].replace("T", " "))  # fmt: skip
    console.print(table)


@app.command()
def show(name: str, as_json: JsonOpt = False) -> None:
    """Show a segment's filter and how many users match it now."""

    async def _show() -> dict[str, Any]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            seg = await get_segment(session, name)
            data = seg.to_dict()
            data["count"] = await count_users(session, f"segment:{json.dumps(seg.name)}")
            return data

    data = run(_show())
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, title=plain(f"segment {data['name']}"), title_justify="left")
    table.add_column("", style="bold")
    table.add_column("", overflow="fold")
    for key in ("filter", "description", "count", "created_at", "updated_at"):
        table.add_row(key, plain(data[key]))
    console.print(table)


@app.command()
def delete(name: str) -> None:
    """Delete a segment (refused while another segment uses it)."""

    async def _delete() -> None:
        async with open_db(settings()) as (_, sessions), sessions.begin() as session:
            await delete_segment(session, name)

    run(_delete())
    console.print(markup_line("deleted segment [bold]{name}[/bold]", name=name))
