"""`relove users import` / `relove users export`: thin commands over ``relove.bulk``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from relove.bulk import (
    ErrorsFile,
    ImportMode,
    ImportOptions,
    ImportProgress,
    ImportSummary,
    guess_format,
    import_rows,
    open_source,
    parse_types,
)
from relove.bulk.export import ExportOptions, export_users
from relove.cli.common import cli_actor, console, err_console, open_db, run, settings
from relove.errors import InvalidInput

_RATE = "{task.fields[rows]:>10,} rows  {task.fields[rate]:>8,.0f} rows/s"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn(_RATE, markup=False),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal,
    )


def _compact(value: Any, limit: int = 70) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _print_summary(summary: ImportSummary, errors_path: Path | None) -> None:
    title = "Dry run: nothing was written" if summary.dry_run else "Import finished"
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in summary.counts().items():
        table.add_row(name, f"{value:,}")
    table.add_row("rows/s", f"{summary.rows_per_second:,.0f}")
    console.print(table)
    if summary.ignored_columns:
        console.print(
            Text("ignored read-only columns: " + ", ".join(summary.ignored_columns))
        )
    for change in summary.changes:
        console.print(Text(f"line {change.line} · user {change.id} · {change.action}"))
        for name, (old, new) in change.fields.items():
            if change.action == "create":
                console.print(Text(f"    {name}: {_compact(new)}"))
            else:
                console.print(Text(f"    {name}: {_compact(old)} → {_compact(new)}"))
    if summary.rejected:
        more = summary.rejected - len(summary.rejections)
        for r in summary.rejections:
            console.print(Text(f"rejected line {r.line}: {r.reason}"))
        if more > 0:
            console.print(Text(f"… and {more:,} more rejected rows"))
        if errors_path is not None:
            console.print(Text(f"rejected rows with their reasons: {errors_path}"))


def import_command(
    file: Annotated[Path, typer.Argument(help="A CSV or JSONL file (.jsonl / .ndjson).")],
    mode: Annotated[
        ImportMode, typer.Option("--mode", help="create | merge | overwrite | markers-only")
    ] = ImportMode.merge,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; write nothing.")
    ] = False,
    delimiter: Annotated[
        str | None, typer.Option("--delimiter", help="CSV delimiter (default: from the header).")
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option("--encoding", help="e.g. utf-8, cp1251 (default: UTF-8, or the BOM's)."),
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--types", help="key=int,key=bool,… (str, int, float, bool, json)."),
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv | jsonl (default: from the name).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=100, max=200_000, help="Rows per batch.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Import users from a CSV or JSONL file; rejected rows go to FILE.errors.csv."""
    type_map = parse_types(types or [])
    fmt = file_format or guess_format(file.name)
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"unknown format {fmt!r}; expected csv or jsonl")
    try:
        stream = file.open("rb")
    except OSError as e:
        raise InvalidInput(f"cannot read {file}: {e.strerror}") from None
    s = settings()
    with stream:
        source = open_source(
            stream, format=fmt, size=os.fstat(stream.fileno()).st_size,  # type: ignore[arg-type]
            encoding=encoding, delimiter=delimiter, types=type_map,
        )  # fmt: skip
        options = ImportOptions(
            mode=mode, dry_run=dry_run, batch_size=batch_size or s.bulk_batch_size
        )
        errors_path = ErrorsFile.path_for(file)
        errors = None
        if not dry_run:
            errors_path.unlink(missing_ok=True)  # a previous run's file would mislead
            errors = ErrorsFile(
                errors_path, source.errors_header, encoding=source.encoding,
                bom=source.bom,
            )  # fmt: skip

        async def _import() -> ImportSummary:
            with _progress() as bar:
                task = bar.add_task(file.name, total=source.bytes_total, rows=0, rate=0.0)

                def show(p: ImportProgress) -> None:
                    bar.update(task, completed=p.bytes_read, rows=p.rows, rate=p.rows_per_second)

                async with open_db(s) as (engine, _):
                    return await import_rows(
                        engine, source, options, progress=show, errors=errors,
                        actor=cli_actor(), label=file.name,
                    )  # fmt: skip

        try:
            summary = run(_import())
        finally:
            if errors is not None:
                errors.close()
    written = errors_path if errors is not None and errors.count else None
    if as_json:
        out = summary.to_dict()
        out["errors_file"] = str(written) if written else None
        sys.stdout.write(json.dumps(out, ensure_ascii=False, default=str) + "\n")
    else:
        _print_summary(summary, written)


def export_command(
    filter_text: Annotated[
        str | None, typer.Option("--filter", help='Only users matching a filter, e.g. \'VIP\'.')
    ] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            "--fields",
            help="e.g. id,first_name,markers.city,markers.tags[],markers.*,context "
            "(default: every importable field).",
        ),
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv | jsonl (default: from --output, or csv).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    delimiter: Annotated[str, typer.Option("--delimiter")] = ",",
    bom: Annotated[
        bool, typer.Option("--bom", help="Start with a UTF-8 BOM (for Excel).")
    ] = False,
) -> None:
    """Export users as CSV or JSONL (streamed); importing the file back reproduces them."""
    fmt = file_format or (guess_format(output.name) if output else "csv")
    options = ExportOptions(
        format=fmt,  # type: ignore[arg-type]
        fields=tuple(fields.split(",")) if fields else None,
        filter=filter_text,
        delimiter=delimiter,
    )
    if filter_text:
        from relove.segments import parse_filter

        parse_filter(filter_text)  # a bad filter fails before anything is opened

    def _count(rows: int) -> None:
        counted[0] = rows

    counted = [0]

    async def _export(out: Any) -> None:
        async with open_db(settings()) as (engine, _):
            if bom:
                out.write("\ufeff")
            async for chunk in export_users(engine, options, progress=_count):
                out.write(chunk)

    if output is None:
        run(_export(sys.stdout))
        return
    partial = output.with_name(output.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            run(_export(out))
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    err_console.print(Text(f"exported {counted[0]:,} users to {output}"))
