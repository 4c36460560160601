"""`relove conversation …`: check the scenario, catalog and persona files; ask the model."""

from __future__ import annotations

from pathlib import Path

import typer

from relove.cli.common import console, markup_line, plain, run, settings

app = typer.Typer(help="Conversation: scenarios, catalog, persona, LLM.", no_args_is_help=True,
                  epilog="Guide: docs/conversation.md")


@app.command("check")
def check(
    scenarios: Path | None = typer.Option(
        None, help="Scenario file (default: RELOVE_SCENARIOS_FILE)."
    ),
    catalog: Path | None = typer.Option(None, help="Catalog file (default: RELOVE_CATALOG_FILE)."),
    persona: Path | None = typer.Option(None, help="Persona file (default: RELOVE_PERSONA_FILE)."),
) -> None:
    """Validate the files the bot would load; a broken one fails with its line and reason."""
    from relove.conversation.catalog import load_catalog
    from relove.conversation.prompt import load_persona
    from relove.conversation.scenarios import load_scenarios

    s = settings()
    scenarios = scenarios or s.scenarios_file
    catalog = catalog or s.catalog_file
    if scenarios:
        flows = load_scenarios(scenarios)
        for flow in flows.flows:
            starts = [f"/{c}" for c in flow.start.commands] + [
                f"?start={p}" for p in flow.start.deep_links
            ]
            console.print(markup_line(
                "flow [bold]{id}[/bold]: {steps} steps, markers {markers}; starts: {starts}",
                id=flow.id, steps=len(flow.steps),
                markers=", ".join(st.marker for st in flow.steps), starts=", ".join(starts) or "—",
            ))  # fmt: skip
        for mode in flows.ai_sessions:
            starts = [f"/{c}" for c in mode.start.commands] + [
                f"?start={p}" for p in mode.start.deep_links
            ]
            fields = list(mode.result) + (["recommendations"] if mode.recommend else [])
            console.print(markup_line(
                "AI mode [bold]{id}[/bold]: up to {turns} turns, result {fields}; writes {writes};"
                " starts: {starts}",
                id=mode.id, turns=mode.max_turns, fields=", ".join(fields) or "—",
                writes=", ".join(mode.write) or "—", starts=", ".join(starts) or "—",
            ))  # fmt: skip
    if catalog:
        items = load_catalog(catalog).items
        console.print(f"catalog: {len(items)} items", highlight=False)
    text = load_persona(persona or s.persona_file)
    console.print(f"persona: {len(text)} characters", highlight=False)
    console.print(
        "LLM: " + (f"{s.llm_model} at {s.llm_base_url or 'api.openai.com'}" if s.llm_enabled
                   else "not configured (scripted replies)"),
        highlight=False,
    )


@app.command("ask")
def ask(text: str = typer.Argument(..., help="A message to send to the model.")) -> None:
    """Send one message with the persona to the configured model and print the answer."""
    from relove.conversation.base import ChatMessage
    from relove.conversation.components import create_provider
    from relove.conversation.prompt import load_persona
    from relove.errors import ConfigError

    s = settings()
    provider = create_provider(s)
    if provider is None:
        raise ConfigError("no LLM configured: set RELOVE_LLM_MODEL and RELOVE_LLM_BASE_URL "
                          "(or RELOVE_LLM_API_KEY)")

    async def _ask() -> str:
        try:
            return await provider.complete(
                [ChatMessage("system", load_persona(s.persona_file)), ChatMessage("user", text)],
                max_tokens=s.llm_max_tokens,
            )
        finally:
            await provider.close()

    console.print(plain(run(_ask())))


@app.command("eval")
def evaluate(
    file: Path = typer.Argument(..., help="Dialogues with expected results (YAML)."),
    scenarios: Path | None = typer.Option(
        None, help="Scenario file with the mode (default: RELOVE_SCENARIOS_FILE)."
    ),
    catalog: Path | None = typer.Option(None, help="Catalog file (default: RELOVE_CATALOG_FILE)."),
) -> None:
    """Run scripted dialogues through a mode's result extraction on the configured model and
    report the accuracy per field (how an operator tunes a mode's goal and persona)."""
    import json
    from typing import Any

    from relove.conversation.ai_sessions.evaluate import Report, load_eval, run_eval
    from relove.conversation.base import ChatMessage, LLMError
    from relove.conversation.catalog import Catalog, load_catalog
    from relove.conversation.components import create_provider
    from relove.conversation.scenarios import load_scenarios
    from relove.errors import ConfigError

    s = settings()
    source = scenarios or s.scenarios_file
    if source is None:
        raise ConfigError("no scenario file: pass --scenarios or set RELOVE_SCENARIOS_FILE")
    modes = {m.id: m for m in load_scenarios(source).ai_sessions}
    spec, mode = load_eval(file, modes)
    catalog_file = catalog or s.catalog_file
    items = load_catalog(catalog_file) if catalog_file else Catalog()
    provider = create_provider(s)
    if provider is None:
        raise ConfigError("no LLM configured: set RELOVE_LLM_MODEL and RELOVE_LLM_BASE_URL "
                          "(or RELOVE_LLM_API_KEY)")

    async def ask(messages: list[ChatMessage], schema: dict[str, Any]) -> str | None:
        assert provider is not None
        try:
            return await provider.complete_json(messages, schema=schema, name=mode.id,
                                                max_tokens=s.ai_result_max_tokens)
        except LLMError as e:
            console.print(plain(f"  model error: {e}"))
            return None

    async def _run() -> Report:
        try:
            return await run_eval(ask, spec, mode, items)
        finally:
            await provider.close()

    report = run(_run())

    def show(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)[:120]

    for case in report.cases:
        if not case.valid:
            state = "invalid"
        else:
            state = "wrong" if case.mismatches else "ok"
            state += " (after repair)" if case.repaired else ""
        console.print(markup_line("case {id}: {state}", id=case.id, state=state))
        for error in case.errors:
            console.print(markup_line("  invalid answer: {e}", e=error))
        for name, (want, got) in case.mismatches.items():
            console.print(markup_line("  {name}: expected {want}, got {got}", name=name,
                                      want=show(want), got=show(got)))  # fmt: skip
    for name, (correct, total) in report.fields.items():
        console.print(markup_line("{name}: {c}/{t} ({p}%)", name=name, c=correct, t=total,
                                  p=round(100 * correct / total)))  # fmt: skip
    valid = sum(c.valid for c in report.cases)
    console.print(markup_line("valid results: {v}/{n}", v=valid, n=len(report.cases)))
