"""Keep docker-compose.yml honest without a Docker engine: run what its services declare.

Each service's command runs here with the service's environment (compose's variables at their
defaults), host names rewritten to the local test services, and must do its job: the two
workers and the delivery process ingest a batch together. Flower, as compose starts it, is
tested in tests/test_flower.py. The properties a deployment relies on are checked here too:
a restart policy, resource limits and a health check on every service, workers that scale,
Redis that keeps its data, a .env.example naming every variable, and an image built from the
lockfile alone. tests/containers/test_stack.py runs the file in real containers.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import Settings
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import settings_env, wait_for_batch
from worker import enqueue

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
#: Compose variables: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}.
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
#: One-shot services (a profile of tools, started with `compose run`): no restart, nothing to watch.
ONE_SHOT = {name for name, service in SERVICES.items() if "tools" in (service.get("profiles") or [])}
#: What `--scale` multiplies: no fixed name and no host port, or a second copy could not start.
SCALED = ("fetch-worker", "cpu-worker", "deliver")
DEV_TOOLS = {"pytest", "pytest-timeout", "ruff", "mypy", "simhash", "jsonschema", "pyyaml"}


def _interpolate(value: object) -> str:
    """A compose value as compose reads it with none of its variables set."""

    def default(match: re.Match[str]) -> str:
        return match.group(3) or "" if (match.group(2) or "") in ("-", ":-") else ""

    return VARIABLE.sub(default, str(value)).replace("$$", "$")


def _local_env(service: dict[str, object], settings: Settings) -> dict[str, str]:
    """The service's environment, pointed at the test Redis and output directory."""
    declared = dict(service.get("environment") or {})  # type: ignore[call-overload]
    env = settings_env(settings)
    for key in declared:
        if key == "INGEST_REDIS_URL":
            env[key] = settings.effective_redis_url
        elif key == "INGEST_OUTPUT_DIR":
            env[key] = str(settings.output_dir)
        elif key == "INGEST_POSTGRES_DSN":
            env.pop(key, None)  # the compose DSN names the compose host; PostgreSQL is tested elsewhere
        else:
            env[key] = _interpolate(declared[key])
    return env


def _command(service: dict[str, object]) -> list[str]:
    """The service's command, its program taken from this interpreter's environment."""
    command = service["command"]
    assert isinstance(command, list)
    program = Path(sys.executable).parent / str(command[0])
    assert program.exists(), f"{command[0]} is not installed beside {sys.executable}"
    return [str(program), *(str(part) for part in command[1:])]


def test_declared_environment_names_real_settings() -> None:
    fields = {f"INGEST_{name.upper()}" for name in Settings.model_fields}
    for name, service in SERVICES.items():
        for key in service.get("environment") or {}:
            if key.startswith("INGEST_"):
                assert key in fields, f"{name} sets unknown setting {key}"


def test_compose_redis_keeps_its_data_across_a_restart() -> None:
    # Without AOF a restart forgets the queues, the unacknowledged messages and the ledger.
    redis_service = SERVICES["redis"]
    command = [str(part) for part in redis_service["command"]]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(volume).endswith(":/data") for volume in redis_service["volumes"])


def _copied_sources() -> list[str]:
    """What the Dockerfile COPYs from the build context (not from another stage)."""
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources += [part for part in line.split()[1:-1] if not part.startswith("--")]
    return sources


def test_dockerfile_copies_what_exists() -> None:
    for source in _copied_sources():
        assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last matching rule wins,
    a rule on a directory covers what is inside it)."""
    ignored = False
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    for pattern in patterns:
        negated = pattern.startswith("!")
        rule = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatch(candidate, rule) for candidate in candidates) or fnmatch.fnmatch(
            path, rule.removeprefix("**/")
        ):
            ignored = not negated
    return ignored


def test_dockerignore_sends_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for source in _copied_sources():
        assert not _ignored(source, patterns), f".dockerignore drops {source}, which the Dockerfile copies"
    for private in (".env", ".git", ".venv", "tests", "ingest-output", "bench", "worker/__pycache__"):
        assert _ignored(private, patterns), f".dockerignore sends {private} to the build"


def test_dockerfile_builds_a_runtime_image_from_the_lockfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage: the build stage's tools stay out of the final image"
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert all(line.split()[1] == "${BASE_IMAGE}" for line in stages)
    assert "--require-hashes" in text and "requirements.lock" in text
    assert ".[dev]" not in text and ".[test]" not in text
    final = text[text.rindex("\nFROM ") :]
    users = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "the final stage runs as a non-root user"
    assert "HEALTHCHECK" in final


def _lock() -> dict[str, str]:
    """Name (normalised) to version of every requirement in requirements.lock, each with hashes."""
    pins: dict[str, str] = {}
    text = (ROOT / "requirements.lock").read_text()
    for entry in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", entry)
        if match:
            assert "--hash=sha256:" in entry, f"{match.group(1)} is locked without a hash"
            pins.setdefault(re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(2))
    return pins


def test_lockfile_pins_every_runtime_dependency_and_no_dev_tool() -> None:
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    runtime = [*project["dependencies"], *project["optional-dependencies"]["flower"]]
    for spec in map(Requirement, runtime):
        name = re.sub(r"[-_.]+", "-", spec.name).lower()
        assert name in pins, f"{spec.name} is not in requirements.lock: regenerate it (README, Deployment)"
        locked = pins[name]
        assert spec.specifier.contains(locked, prereleases=True), f"lock has {name}=={locked}, not {spec}"
    assert not DEV_TOOLS & set(pins), f"dev tools in the runtime lock: {DEV_TOOLS & set(pins)}"


def test_every_service_restarts_is_limited_and_has_a_health_check() -> None:
    for name, service in SERVICES.items():
        limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        assert limits.get("cpus") and limits.get("memory"), f"{name} has no cpus/memory limit"
        health = service.get("healthcheck") or {}
        if name in ONE_SHOT:
            assert service.get("restart") == "no" and health.get("disable") is True, name
            continue
        assert service.get("restart") == "unless-stopped", f"{name} does not restart"
        assert health.get("test") and health.get("interval"), f"{name} has no health check"


def test_health_checks_ask_roles_the_image_knows() -> None:
    roles = {"worker", "deliver", "intake", "watch", "flower"}
    for name, service in SERVICES.items():
        test = [str(part) for part in (service.get("healthcheck") or {}).get("test") or []]
        if "/app/healthcheck.py" in test:
            assert test[test.index("/app/healthcheck.py") + 1] in roles, name
    assert "COPY deploy/healthcheck.py ./healthcheck.py" in (ROOT / "Dockerfile").read_text()


def test_workers_scale() -> None:
    for name in SCALED:
        assert "container_name" not in SERVICES[name], f"{name}: a fixed name stops --scale"
        assert not SERVICES[name].get("ports"), f"{name}: a host port stops --scale"


def test_compose_redis_refuses_writes_rather_than_evicting() -> None:
    command = [_interpolate(part) for part in SERVICES["redis"]["command"]]
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    postgres_volumes = [str(volume) for volume in SERVICES["postgres"]["volumes"]]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres_volumes)


def test_env_example_documents_every_variable() -> None:
    used = set(VARIABLE.findall(COMPOSE_TEXT))
    documented = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", line)
        if match:
            documented[match.group(1)] = match.group(2)
    names = {name for name, _operator, _default in used}
    assert names <= set(documented), f".env.example misses {sorted(names - set(documented))}"
    for name, operator, default in used:
        if operator in ("-", ":-") and documented[name]:
            given = documented[name]
            assert given == default, f".env.example gives {name}={given}, compose's default is {default}"


def _podman_yaml(path: Path) -> Any:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!reset", lambda loader, node: None)
    return yaml.load(path.read_text(), Loader=Loader)  # a SafeLoader that knows compose's !reset


def test_podman_override_names_real_services_and_local_images() -> None:
    override = _podman_yaml(ROOT / "deploy" / "containers" / "compose.podman.yml")["services"]
    assert set(override) <= set(SERVICES)
    assert all(service.get("network_mode") == "host" for service in override.values())
    built = (ROOT / "deploy" / "containers" / "service-images.sh").read_text()
    for name in ("redis", "postgres"):
        assert override[name]["image"] == f"localhost/news-ingest-{name}:bookworm"
        assert "localhost/news-ingest-$service:bookworm" in built
        assert (ROOT / "deploy" / "containers" / f"{name}.Containerfile").exists()


@pytest.mark.integration
def test_compose_workers_ingest_a_batch_together(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"max_retries": 0})
    pages = load_pages()[:2]
    processes = []
    logs = []
    try:
        for name in ("fetch-worker", "cpu-worker", "deliver"):
            service = SERVICES[name]
            env = _local_env(service, settings)
            env["INGEST_FETCH_ALLOW_PRIVATE"] = "true"  # the test pages are on loopback
            log = (tmp_path / f"{name}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(_command(service), env=env, stdout=log, stderr=log, start_new_session=True)
            )
        with serve_pages(pages) as server:
            result = enqueue([server.url(page.id) for page in pages], settings=settings)
            status = wait_for_batch(settings, result.batch, timeout=120)
        assert status["outcomes"]["published"] == 2  # type: ignore[index]
        assert len((settings.output_dir / "articles.jsonl").read_text().splitlines()) == 2
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        for log in logs:
            log.close()
