"""`relove automations check|list|status|runs|pause|resume`: automations from the shell."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from relove.automations.definition import (
    AutomationFile,
    AutomationFileError,
    load_automations,
    scenario_flow_ids,
)
from relove.cli.common import console, err_console, open_db, plain, print_json, run, settings
from relove.errors import ConfigError, NotFound

app = typer.Typer(help="Automations: triggered sequences (docs/automations.md).",
                  no_args_is_help=True, epilog="Guide: docs/automations.md")  # fmt: skip

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for programs.")]


def _file() -> AutomationFile:
    s = settings()
    if s.automations_file is None:
        raise ConfigError("RELOVE_AUTOMATIONS_FILE is not set")
    return load_automations(s.automations_file, scenario_flow_ids(s.scenarios_file))


def _known(automation_id: str) -> None:
    if _file().get(automation_id) is None:
        raise NotFound(f"automation {automation_id!r} is not in RELOVE_AUTOMATIONS_FILE")


@app.command()
def check(
    file: Annotated[Path, typer.Argument(help="The YAML file to check.")],
    scenarios: Annotated[Path | None, typer.Option(
        "--scenarios", help="The scenarios file start_flow names flows of "
        "(default: RELOVE_SCENARIOS_FILE).")] = None,
) -> None:
    """Check a file: one line per problem (file:line: path: reason), exit 1 if any."""
    if scenarios is None:
        env = os.environ.get("RELOVE_SCENARIOS_FILE")
        scenarios = Path(env) if env else None
    try:
        found = load_automations(file, scenario_flow_ids(scenarios))
    except AutomationFileError as e:
        for line in e.lines:
            err_console.print(plain(line))
        raise typer.Exit(1) from None
    console.print(plain(f"{file}: {len(found.automations)} automations, OK"))


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """The automations of RELOVE_AUTOMATIONS_FILE with their counts."""
    from relove.automations.service import status

    automations = _file()

    async def _list() -> list[dict[str, Any]]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            out = []
            for a in automations.automations:
                st = (await status(session, a.id)).to_dict()
                out.append({"id": a.id, "trigger": a.trigger.describe(),
                            "steps": len(a.steps), **st})  # fmt: skip
            return out

    items = run(_list())
    if as_json:
        print_json(items)
        return
    table = Table("id", "trigger", "steps", "paused", "entered", "active", "completed",
                  "stopped", "sent", "errors")  # fmt: skip
    for i in items:
        table.add_row(plain(i["id"]), plain(i["trigger"]), str(i["steps"]),
                      "yes" if i["paused"] else "", str(i["entered"]), str(i["active"]),
                      str(i["completed"]), str(i["stopped"]), str(i["sent"]), str(i["errors"]))
    console.print(table)


@app.command("status")
def status_(automation_id: str, as_json: JsonOpt = False) -> None:
    """Entered, waiting per step, completed, stopped (by reason), sent, errors."""
    from relove.automations.service import status

    _known(automation_id)

    async def _status() -> dict[str, Any]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return (await status(session, automation_id)).to_dict()

    st = run(_status())
    if as_json:
        print_json(st)
        return
    for key in ("paused", "entered", "active", "completed", "stopped", "sent", "errors"):
        console.print(plain(f"{key}: {st[key]}"))
    for step, n in sorted(st["at_step"].items()):
        console.print(plain(f"  at step {step}: {n}"))
    for reason, n in sorted(st["stop_reasons"].items()):
        console.print(plain(f"  stopped ({reason}): {n}"))


@app.command()
def runs(automation_id: str,
         user: Annotated[int | None, typer.Option("--user", help="Only this user's runs.")] = None,
         as_json: JsonOpt = False) -> None:  # fmt: skip
    """The latest runs of an automation (newest first)."""
    from relove.automations.service import user_runs

    async def _runs() -> list[dict[str, Any]]:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            return await user_runs(session, automation_id, user)

    items = run(_runs())
    if as_json:
        print_json(items)
        return
    table = Table("run", "user", "status", "step", "due", "started", "ended", "sent", "errors",
                  "reason")  # fmt: skip
    for r in items:
        table.add_row(str(r["id"]), str(r["user_id"]), r["status"], plain(r["step"] or ""),
                      f"{r['due_at']:%Y-%m-%d %H:%M}" if r["due_at"] else "",
                      f"{r['started_at']:%Y-%m-%d %H:%M}",
                      f"{r['ended_at']:%Y-%m-%d %H:%M}" if r["ended_at"] else "",
                      str(r["sent"]), str(r["errors"]), plain(r["reason"] or ""))
    console.print(table)


def _pause(automation_id: str, paused: bool) -> None:
    from relove.automations.service import set_paused

    _known(automation_id)

    async def _set() -> None:
        async with open_db(settings()) as (_, sessions), sessions() as session:
            await set_paused(session, automation_id, paused)
            await session.commit()

    run(_set())
    console.print(plain(f"{automation_id}: {'paused' if paused else 'resumed'}"))


@app.command()
def pause(automation_id: str) -> None:
    """Pause: no one enters and no run moves on until resumed."""
    _pause(automation_id, True)


@app.command()
def resume(automation_id: str) -> None:
    """Resume a paused automation (due steps run at once)."""
    _pause(automation_id, False)
