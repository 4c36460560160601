"""Every example marked runnable in README.md and docs/ runs as written (docs/development.md,
"Runnable examples").

Each block is its own test (``page:line``): a shell block runs under ``bash -euo pipefail``, a
Python block under the venv's Python, in a fresh directory with ``relove`` on PATH and
``RELOVE_DATABASE_URL`` pointing at a fresh SQLite copy of a migrated database with the 300 demo
users and NAMED_USERS. ``serve`` blocks share one ``relove serve`` per module (``$API``, ``$T``);
``sandbox`` blocks share one ``relove sandbox`` that knows the demo users and the admin. `relove`
and `python` go through tests/docs/forkserver.py unless DOCS_EXAMPLES_PLAIN=1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import insert

from relove.db.engine import create_engine
from relove.db.migrate import upgrade
from relove.db.models import User
from relove.sandbox.core import DEFAULT_TOKEN
from relove.sandbox.demo import generate_people, seed_database
from relove.webhooks.signing import new_secret

from .examples import ROOT, Block, blocks, example_files, pages, runnable_blocks
from .forkserver import write_clients

BIN = Path(sys.executable).parent
BLOCKS = runnable_blocks()
ADMIN_ID = 7000001
DEMO_USERS = 300
WEBHOOK_SECRET = new_secret()
# The users the examples name by id, besides the 300 demo users.
NAMED_USERS = {1: "Ирина", 2: "Пётр", 42: "Анна", 12345: "Анна", 123456: "Мария"}
# Paths the guides name relative to a checkout; linked into each block's directory.
CHECKOUT_DIRS = ("relove", "deploy", "bench")
# Guides with CLI or API examples and how many runnable blocks each has at least, so the
# marking cannot quietly rot.
MIN_RUNNABLE = {
    "docs/analytics.md": 1,
    "docs/api.md": 7,
    "docs/automations.md": 2,
    "docs/broadcasts.md": 2,
    "docs/bulk.md": 2,
    "docs/configuration.md": 1,
    "docs/console.md": 2,
    "docs/events.md": 1,
    "docs/markers.md": 1,
    "docs/segments.md": 2,
    "docs/webhooks.md": 2,
    "docs/ru/automations.md": 2,
    "docs/ru/broadcasts.md": 2,
    "docs/ru/console.md": 1,
    "docs/ru/segments.md": 2,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _base_env(database: Path, path: Path = BIN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELOVE_")}
    env.update(
        PATH=os.pathsep.join((str(path), str(BIN), env.get("PATH", "/usr/bin:/bin"))),
        RELOVE_DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        COLUMNS="160",
        # a receiver's secret, as `relove webhooks add` prints it (docs/webhooks.md snippet)
        WEBHOOK_SECRET=WEBHOOK_SECRET,
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


@dataclass
class Server:
    env: dict[str, str]


@pytest.fixture(scope="module")
def relove_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The directory whose `relove` and `python` the examples run: the fork server's clients
    (one import of the CLI for all of them), or with DOCS_EXAMPLES_PLAIN=1 the venv's."""
    if os.environ.get("DOCS_EXAMPLES_PLAIN") == "1":
        yield BIN
        return
    work = tmp_path_factory.mktemp("docs-forkserver")
    sock = work / "relove.sock"
    env = _base_env(work / "unused.db")
    with (work / "forkserver.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("forkserver.py")), str(sock)],
            env=env, stdout=subprocess.PIPE, stderr=log,
            cwd=work, start_new_session=True,
        )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        (work / "bin").mkdir()
        write_clients(work / "bin", sock)
        yield work / "bin"
    finally:
        _stop(proc)
        proc.stdout.close()


@pytest.fixture(scope="module")
async def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database with the demo's 300 users and NAMED_USERS, copied for every
    block."""
    path = tmp_path_factory.mktemp("docs-db") / "template.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade(engine)
    await seed_database(engine, DEMO_USERS)
    async with engine.begin() as conn:
        await conn.execute(insert(User.__table__), [
            {"id": id_, "first_name": name, "markers": {"city": "Москва"}, "context": {}}
            for id_, name in NAMED_USERS.items()
        ])
    await engine.dispose()
    return path


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=log.parent, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def serve(template_db: Path, relove_path: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `relove serve` for the module's serve blocks, with an admin token in ``$T``."""
    work = tmp_path_factory.mktemp("docs-serve")
    database = work / "relove.db"
    shutil.copy(template_db, database)
    env = _base_env(database, relove_path)
    created = subprocess.run(
        [str(relove_path / "relove"), "tokens", "create", "--name", "docs", "--scopes", "admin"],
        env=env, capture_output=True, text=True, check=True, cwd=work,
    )
    token = re.search(r"rlv_\S+", created.stdout)
    assert token, created.stdout
    port = _free_port()
    proc = _spawn([str(BIN / "relove"), "serve", "--port", str(port)], env, work / "serve.log")
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield Server({**env, "API": f"http://127.0.0.1:{port}/api/v1", "T": token[0]})
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One `relove sandbox` for the module's sandbox blocks: the variables a bot needs."""
    work = tmp_path_factory.mktemp("docs-sandbox")
    port = _free_port()
    env = _base_env(work / "unused.db")
    proc = _spawn([str(BIN / "relove"), "sandbox", "--port", str(port), "--no-limits"], env,
                  work / "sandbox.log")
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc)
        # The admin and the demo users, as people who have started the bot (as `relove demo`).
        people = [{"id": ADMIN_ID, "first_name": "Админ", "started": True}] + [
            {"id": p["id"], "first_name": p["first_name"], "started": True,
             "blocked": not p["is_active"]} for p in generate_people(DEMO_USERS)
        ]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/users", data=json.dumps({"users": people}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=30):
            pass
        yield {
            "RELOVE_TELEGRAM_API_URL": f"http://127.0.0.1:{port}",
            "RELOVE_BOT_TOKEN": DEFAULT_TOKEN,
            "RELOVE_ADMIN_IDS": str(ADMIN_ID),
        }
    finally:
        _stop(proc)


def _workdir(tmp_path: Path, block: Block) -> Path:
    for name in CHECKOUT_DIRS:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    (tmp_path / "docs").mkdir()  # generated files the guides write to docs/ land here
    for name, contents in example_files(block.page).items():
        (tmp_path / name).write_bytes(contents)
    # curl as the examples call it, but an HTTP error (4xx/5xx) fails the block.
    (tmp_path / ".curlrc").write_text("--fail-with-body\n--silent\n--show-error\n")
    return tmp_path


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example_runs_as_written(block: Block, request: pytest.FixtureRequest,
                                 template_db: Path, relove_path: Path, tmp_path: Path) -> None:
    work = _workdir(tmp_path, block)
    if "serve" in block.needs:
        env = dict(request.getfixturevalue("serve").env)
    else:
        database = work / "relove.db"
        shutil.copy(template_db, database)
        env = _base_env(database, relove_path)
    if "sandbox" in block.needs:
        env.update(request.getfixturevalue("sandbox"))
    env["CURL_HOME"] = str(work)
    if block.lang == "python":
        (work / "example.py").write_text(block.code, encoding="utf-8")
        args = ["python", "example.py"]  # the first on the block's PATH
    else:
        (work / "example.sh").write_text(block.code, encoding="utf-8")
        args = ["bash", "-euo", "pipefail", "example.sh"]
    args[0] = shutil.which(args[0], path=env["PATH"]) or args[0]
    done = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, (
        f"{block.id} exited with {done.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{done.stdout[-4000:]}--- stderr\n{done.stderr[-4000:]}"
    )


def test_runnable_blocks_are_shell_or_python() -> None:
    for block in BLOCKS:
        assert block.lang in ("sh", "python"), block.id


@pytest.mark.parametrize("guide", sorted(MIN_RUNNABLE))
def test_guides_keep_their_examples_marked(guide: str) -> None:
    marked = [b for b in blocks(ROOT / guide) if b.runnable]
    assert len(marked) >= MIN_RUNNABLE[guide], (
        f"{guide}: {len(marked)} runnable blocks, expected at least {MIN_RUNNABLE[guide]}"
    )


def test_every_guide_with_cli_examples_is_counted() -> None:
    """A guide whose sh blocks run `relove` or curl must be in MIN_RUNNABLE (or be one whose
    examples cannot run here)."""
    cannot_run_here = {"README.md", "docs/cli.md", "docs/deployment.md", "docs/sandbox.md",
                       "docs/conversation.md", "docs/ai-sessions.md", "docs/benchmarks.md",
                       "docs/development.md"}
    for page in pages():
        name = str(page.relative_to(ROOT))
        has_cli = any(b.lang == "sh" and re.search(r"^\s*(relove|curl) ", b.code, re.M)
                      for b in blocks(page))
        if has_cli and name not in cannot_run_here:
            assert name in MIN_RUNNABLE, name


def test_the_webhook_receiver_snippet_verifies_relove_signatures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/webhooks.md's receiver accepts what relove signs (also mid-rotation, with two
    signatures) and refuses a forged body."""
    from datetime import UTC, datetime

    from relove.webhooks.signing import headers

    (snippet,) = [b for b in blocks(ROOT / "docs" / "webhooks.md") if b.lang == "python"]
    monkeypatch.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    namespace: dict[str, object] = {}
    exec(compile(snippet.code, snippet.id, "exec"), namespace)  # noqa: S102 - our own docs
    handle = namespace["handle"]
    assert callable(handle)
    body = json.dumps({"type": "marker.changed", "data": {"event_id": 48213}}).encode()
    now = datetime.now(UTC)
    handle(body, headers([WEBHOOK_SECRET], "evt_48213", now, body.decode()))
    handle(body, headers([new_secret(), WEBHOOK_SECRET], "evt_48213", now, body.decode()))
    assert capsys.readouterr().out == "marker.changed 48213\n" * 2
    forged = body.replace(b"48213", b"48214")
    with pytest.raises(PermissionError):
        handle(forged, headers([WEBHOOK_SECRET], "evt_48213", now, body.decode()))
    with pytest.raises(PermissionError):
        handle(body, headers([new_secret()], "evt_48213", now, body.decode()))
