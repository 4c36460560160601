"""Sandbox fidelity: does the sandbox answer like the Bot API? An independent check suite.

    .venv/bin/python bench/sandbox_fidelity.py              # every group, prints the pass rate
    .venv/bin/python bench/sandbox_fidelity.py -v           # and each failure
    .venv/bin/python bench/sandbox_fidelity.py --no-ptb     # without python-telegram-bot

Groups of checks, each check pass or fail:

* ``methods``  — every method of the Bot API specification (``bench/botapi_spec.json``, from
  PaulSonOfLars/telegram-bot-api-spec) is implemented or answers 400 "not supported" — never
  404, which clients report as a wrong token; a name the Bot API does not have answers 404.
* ``required`` — every required parameter of every implemented method, left out of an otherwise
  valid call: the official server's answer (tdlib/telegram-bot-api ``Client.cpp``).
* ``wording``  — further refusals compared word for word with the official server's.
* ``results``  — a valid call of every implemented method; its result has every field the
  specification requires, with the specification's JSON types (recursively).
* ``behaviour`` — what Telegram does to text and chats: Markdown, trimming, auto-detected
  entities, link normalisation, privacy mode, protect_content.
* ``ptb``      — python-telegram-bot (``bench/sandbox_fidelity_ptb.py``) runs a small bot on the
  sandbox in polling and in webhook mode.

The sandbox runs in this process on a free port, flood limits off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sandbox_fidelity_cases import (  # noqa: E402
    BEHAVIOUR,
    NOT_CALLED,
    REQUIRED,
    WORDING,
    Context,
    base_params,
)
from relove.sandbox.core import DEFAULT_TOKEN, SandboxConfig  # noqa: E402
from relove.sandbox.methods import METHODS  # noqa: E402
from relove.sandbox.server import running_sandbox  # noqa: E402

SPEC = json.loads((Path(__file__).parent / "botapi_spec.json").read_text(encoding="utf-8"))


@dataclass
class Check:
    group: str
    name: str
    ok: bool
    detail: str = ""


class Api:
    """Raw Bot API calls over HTTP, form-encoded like most clients."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.base = f"{url}/bot{DEFAULT_TOKEN}"
        self.http = http

    async def __call__(self, method: str, **params: Any) -> dict[str, Any]:
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        async with self.http.post(f"{self.base}/{method}", data=form) as r:
            body = await r.json()
            body["_status"] = r.status
            return body


# --- the specification's types ----------------------------------------------------------------
def _matches(value: Any, kind: str, path: str, problems: list[str]) -> bool:
    if kind.startswith("Array of "):
        if not isinstance(value, list):
            return False
        for i, item in enumerate(value):
            conform(item, [kind[len("Array of "):]], f"{path}[{i}]", problems)
        return True
    simple = {"Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "String": lambda v: isinstance(v, str),
              "Boolean": lambda v: isinstance(v, bool),
              "True": lambda v: v is True,
              "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    if kind in simple:
        return bool(simple[kind](value))
    if kind not in SPEC["types"]:
        return True  # InputFile and the like never appear in results
    definition = SPEC["types"][kind]
    if definition and isinstance(definition[0], str):  # an abstract type: one of its subtypes
        return any(_conforms_quietly(value, sub) for sub in definition)
    if not isinstance(value, dict):
        return False
    for name, required, types in definition:
        if name not in value:
            if required:
                problems.append(f"{path}.{name}: missing")
            continue
        conform(value[name], types, f"{path}.{name}", problems)
    return True


def _conforms_quietly(value: Any, kind: str) -> bool:
    problems: list[str] = []
    return _matches(value, kind, "", problems) and not problems


def conform(value: Any, types: list[str], path: str, problems: list[str]) -> None:
    """Add to ``problems`` where ``value`` is not one of the specification's ``types``."""
    for kind in types:
        attempt: list[str] = []
        if _matches(value, kind, path, attempt):
            problems += attempt
            return
    problems.append(f"{path}: {json.dumps(value, ensure_ascii=False)[:80]} is not "
                    f"{' or '.join(types)}")


def spec_name(method: str) -> str:
    return next(name for name in SPEC["methods"] if name.lower() == method)


# --- groups -----------------------------------------------------------------------------------
async def methods_group(api: Api) -> list[Check]:
    checks = []
    for name in SPEC["methods"]:
        body = await api(name)
        implemented = name.lower() in METHODS
        ok = body["_status"] != 404 and (implemented or (
            body["_status"] == 400 and "not supported by the sandbox" in body["description"]))
        checks.append(Check("methods", name, ok, json.dumps(body)[:160]))
    body = await api("sendSomethingElse")
    checks.append(Check("methods", "unknown name → 404", body["_status"] == 404 and body[
        "description"] == "Not Found", json.dumps(body)))
    return checks


async def required_group(api: Api, ctx: Context) -> list[Check]:
    checks = []
    for method in sorted(METHODS):
        if method in NOT_CALLED:
            continue
        name = spec_name(method)
        for param, required, _ in SPEC["methods"][name]["fields"]:
            if not required:
                continue
            expected = REQUIRED.get((name, param))
            label = f"{name} without {param}"
            if expected is None:
                checks.append(Check("required", label, False, "no expectation in the table"))
                continue
            try:
                params = await base_params(ctx, name)
                params.pop(param, None)
                body = await api(name, **params)
            except Exception as e:  # a call that cannot even be made fails its check
                checks.append(Check("required", label, False, f"{type(e).__name__}: {e}"))
                continue
            got = "ok" if body.get("ok") else body.get("description")
            checks.append(Check("required", label, got == expected,
                                f"expected {expected!r}, got {got!r}"))
    return checks


async def wording_group(api: Api, ctx: Context) -> list[Check]:
    checks = []
    for i, (name, make, expected) in enumerate(WORDING):
        label = f"{name} #{i + 1}"
        try:
            params = await make(ctx)
            body = await api(name, **params)
        except Exception as e:
            checks.append(Check("wording", label, False, f"{type(e).__name__}: {e}"))
            continue
        got = "ok" if body.get("ok") else body.get("description")
        label = f"{name} {json.dumps(params, ensure_ascii=False)[:70]}"
        checks.append(Check("wording", label, got == expected,
                            f"expected {expected!r}, got {got!r}"))
    return checks


async def results_group(api: Api, ctx: Context) -> list[Check]:
    checks = []
    for method in sorted(METHODS):
        if method in NOT_CALLED:
            continue
        name = spec_name(method)
        problems: list[str] = []
        try:
            body = await api(name, **await base_params(ctx, name))
        except Exception as e:
            body = {"description": f"{type(e).__name__}: {e}"}
        if not body.get("ok"):
            problems.append(f"refused: {body.get('description')}")
        else:
            conform(body["result"], SPEC["methods"][name]["returns"], "result", problems)
        if name == "setWebhook":
            await api("deleteWebhook")
        checks.append(Check("results", name, not problems, "; ".join(problems[:3])))
    return checks


async def behaviour_group(api: Api, ctx: Context) -> list[Check]:
    checks = []
    for label, run in BEHAVIOUR:
        try:
            problem = await run(api, ctx)
        except Exception as e:  # a broken check is a failed check
            problem = f"{type(e).__name__}: {e}"
        checks.append(Check("behaviour", label, problem is None, problem or ""))
    return checks


async def run_checks(*, ptb: bool = True, webhook: bool = True) -> list[Check]:
    """Every check against a fresh in-process sandbox (``webhook``: PTB's webhook mode too,
    on a port probed free beforehand — PTB needs the number up front)."""
    checks: list[Check] = []
    async with running_sandbox(SandboxConfig(port=0)) as sb, aiohttp.ClientSession() as http:
        sb.config.limits.enabled = False
        assert sb.url
        api = Api(sb.url, http)
        ctx = await Context.create(sb, api)
        groups: list[Callable[[], Awaitable[list[Check]]]] = [
            lambda: methods_group(api), lambda: required_group(api, ctx),
            lambda: wording_group(api, ctx), lambda: results_group(api, ctx),
            lambda: behaviour_group(api, ctx)]
        for group in groups:
            checks += await group()
        if ptb:
            from bench.sandbox_fidelity_ptb import ptb_checks

            for label, problem in await ptb_checks(sb, webhook=webhook):
                checks.append(Check("ptb", label, problem is None, problem or ""))
    return checks


def report(checks: list[Check], verbose: bool) -> float:
    groups: dict[str, list[Check]] = {}
    for check in checks:
        groups.setdefault(check.group, []).append(check)
    for group, items in groups.items():
        passed = sum(c.ok for c in items)
        print(f"{group:10} {passed:4}/{len(items):<4} {passed / len(items):7.1%}")
        if verbose:
            for c in items:
                if not c.ok:
                    print(f"    FAIL {c.name}: {c.detail}")
    passed = sum(c.ok for c in checks)
    rate = passed / len(checks)
    print(f"{'total':10} {passed:4}/{len(checks):<4} {rate:7.1%}   "
          f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return rate


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--no-ptb", action="store_true")
    args = parser.parse_args()
    print(f"Bot API specification: {SPEC['version']}")
    result = asyncio.run(run_checks(ptb=not args.no_ptb))
    sys.exit(0 if report(result, args.verbose) >= 0.95 else 1)
