"""The compose stack in real containers: build the image, run docker-compose.yml in podman,
ingest a batch while a worker and Redis restart, and check Flower's guard.

Its own CI step runs it (`pytest -m containers`, after deploy/containers/setup.sh); the
default run deselects it. Phase by phase (each one's seconds are printed at the end of the run,
"container stack timings"):

1. images: the Debian base (deploy/containers/base-image.sh, reused when it exists), Redis and
   PostgreSQL from Debian's packages (service-images.sh, reused), then the Dockerfile on that
   base with ``podman build`` (layers cached: with the lockfile unchanged only the sources'
   layers are rebuilt);
2. up: podman-compose with docker-compose.yml, deploy/containers/compose.podman.yml (host
   network, the local Redis and PostgreSQL) and a file of this run's that lets the fetcher
   reach loopback; a compose project of its own (containers, volumes), on free ports, with the
   CPU worker scaled to 2;
3. ready: every container's own health check (``podman healthcheck run``) passes;
4. batch: 21 URLs (the fixture pages, three variants each) served on 127.0.0.1, enqueued by the
   compose ``producer``; once some have ended, one CPU worker container restarts, then the
   Redis container does; every URL still ends exactly once, every record is in PostgreSQL once;
5. Flower answers 401 without credentials and 200 with them.

Whatever happens, the project's containers, pod and volumes are removed at the end; the
containers' logs are kept in the test's tmp directory first.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from config import Settings
from tests.containers.conftest import TIMINGS
from tests.support.faults import free_port
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "containers"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BASE_IMAGE = "localhost/news-ingest-base:bookworm"
IMAGE = "localhost/news-ingest:containers-test"
PROJECT_PREFIX = "news-ingest-ct-"
CREDENTIALS = "watcher:s3cret-pass"
VARIANTS = 3
CPU_WORKER_CPUS = 1
#: Lines podman prints on every container start and health check without systemd.
_NOISE = re.compile(r"unable to get systemd connection|Removing timer for container")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time a phase into the run's summary (marked when it failed)."""
    start = time.monotonic()
    failed = True
    try:
        yield
        failed = False
    finally:
        TIMINGS.append((name + (" (FAILED)" if failed else ""), time.monotonic() - start))


def _quiet(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _NOISE.search(line))


def _run(
    args: list[str], env: dict[str, str], log: Path | None = None, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if log is not None:
        with log.open("a") as out:
            out.write(
                f"$ {' '.join(args)}\n{result.stdout}{_quiet(result.stderr)}\n[exit {result.returncode}]\n"
            )
    if check and result.returncode != 0:
        output = f"{result.stdout[-3000:]}\n{_quiet(result.stderr)[-3000:]}"
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}\n{output}")
    return result


def _tools() -> tuple[str, str]:
    """podman and podman-compose (the venv's first: Debian's 1.0.3 cannot run this file)."""
    podman = shutil.which("podman")
    beside = Path(sys.executable).parent / "podman-compose"
    compose = str(beside) if beside.exists() else shutil.which("podman-compose")
    if not podman or not compose:
        message = "podman or podman-compose is missing: run deploy/containers/setup.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return podman, compose


def _podman_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    env.setdefault("CONTAINERS_CONF", str(DEPLOY / "containers.conf"))
    return env


@dataclass
class Stack:
    """One compose project of this test, on its own ports."""

    project: str
    compose_bin: str
    files: list[Path]
    env: dict[str, str]
    log: Path
    redis_port: int
    postgres_port: int
    flower_port: int

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        files = [part for path in self.files for part in ("-f", str(path))]
        command = [self.compose_bin, "-p", self.project, *files, "--env-file", str(DEPLOY / "podman.env")]
        return _run([*command, *args], self.env, self.log, timeout)

    def podman(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        return _run(["podman", *args], self.env, self.log, timeout, check)

    def containers(self, service: str | None = None) -> list[str]:
        filters = ["--filter", f"label=io.podman.compose.project={self.project}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        return sorted(self.podman("ps", "-a", *filters, "--format", "{{.Names}}").stdout.split())

    def one(self, service: str) -> str:
        names = self.containers(service)
        assert names, f"no container of {service}"
        return names[0]

    def inspect(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.podman("inspect", name).stdout)[0])

    def healthy(self, name: str) -> bool:
        return self.podman("healthcheck", "run", name, check=False, timeout=60).returncode == 0

    @property
    def settings(self) -> Settings:
        """Settings of a process on the host that talks to this stack's Redis and PostgreSQL."""
        return Settings(
            redis_url=f"redis://127.0.0.1:{self.redis_port}/0",
            postgres_dsn=self.postgres_dsn,
            _env_file=None,  # type: ignore[call-arg]
        )

    @property
    def postgres_dsn(self) -> str:
        return f"postgresql://ingest:ingest@127.0.0.1:{self.postgres_port}/ingest"


def remove_project(project: str, env: dict[str, str], keep_logs: Path | None = None) -> None:
    """Every container (scaled replicas too), the pod and the volumes of a compose project."""
    label = f"label=io.podman.compose.project={project}"
    names = _run(["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"], env, check=False).stdout
    for name in names.split():
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            logs = _run(["podman", "logs", name], env, check=False, timeout=60)
            (keep_logs / f"{name}.log").write_text(logs.stdout + _quiet(logs.stderr))
    if names.split():
        _run(["podman", "rm", "--force", "--time", "10", *names.split()], env, check=False, timeout=180)
    _run(["podman", "pod", "rm", "--force", f"pod_{project}"], env, check=False)
    volumes = _run(["podman", "volume", "ls", "-q", "--filter", label], env, check=False).stdout.split()
    if volumes:
        _run(["podman", "volume", "rm", "--force", *volumes], env, check=False)


def remove_stale_projects(env: dict[str, str]) -> None:
    """Projects an earlier run of this test left behind (killed before its teardown)."""
    listed = _run(
        ["podman", "ps", "-a", "--format", '{{index .Labels "io.podman.compose.project"}}'], env, check=False
    ).stdout.split()
    volumes = _run(["podman", "volume", "ls", "--format", "{{.Name}}"], env, check=False).stdout.split()
    stale = {name for name in listed if name.startswith(PROJECT_PREFIX)}
    stale |= {name.rsplit("_", 1)[0] for name in volumes if name.startswith(PROJECT_PREFIX)}
    for project in sorted(stale):
        remove_project(project, env)


def _wait(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> float:
    """Seconds until ``predicate`` held; Redis or socket errors count as not yet."""
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except (redis.RedisError, OSError, psycopg.Error):
            pass
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not true after {timeout:.0f} s")
        time.sleep(every)


def _status(stack: Stack, batch: str) -> Any:
    from stores.ledger import Ledger
    from stores.redis_client import client_for

    settings = stack.settings
    return Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).status(batch)


def _dead_letters(stack: Stack, batch: str) -> list[str]:
    """The batch's dead letters as `stage/reason: url: error`, to say why in a failed assertion."""
    from stores.ledger import Ledger
    from stores.redis_client import client_for

    settings = stack.settings
    letters = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).dead_letters(batch)
    return [f"{letter.stage}/{letter.reason}: {letter.url}: {letter.error}" for letter in letters]


def _accounted(stack: Stack, batch: str) -> int:
    status = _status(stack, batch)
    return int(status.accounted) if status else 0


def _http(port: int, path: str, credentials: str | None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _test_overrides(path: Path) -> Path:
    """This run's compose file: loopback pages may be fetched (the SSRF rule refuses them)."""
    lines = ["services:"]
    for name in ("fetch-worker", "cpu-worker", "deliver", "producer"):
        lines += [f"  {name}:", "    environment:", '      INGEST_FETCH_ALLOW_PRIVATE: "true"']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def images() -> Iterator[None]:
    """The base, Redis and PostgreSQL images (reused when present) and the project's image."""
    _tools()
    env = _podman_env()
    with phase("base image (debootstrap; reused if present)"):
        _run(["bash", str(DEPLOY / "base-image.sh")], env, timeout=900)
    with phase("redis + postgres images (reused if present)"):
        _run(["bash", str(DEPLOY / "service-images.sh")], env, timeout=900)
    with phase("podman build of the Dockerfile"):
        _run(
            [
                "podman",
                "build",
                "--format",
                "docker",
                "--build-arg",
                f"BASE_IMAGE={BASE_IMAGE}",
                "-v",
                f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
                "-t",
                IMAGE,
                str(ROOT),
            ],
            env,
            timeout=1200,
        )
    yield


@pytest.fixture
def stack(images: None, tmp_path: Path) -> Iterator[Stack]:
    """The compose stack up, CPU worker scaled to 2; removed on the way out, whatever happened."""
    _podman, compose_bin = _tools()
    env = _podman_env()
    remove_stale_projects(env)
    ports = {"REDIS_PORT": free_port(), "POSTGRES_PORT": free_port(), "FLOWER_PORT": free_port()}
    env.update({key: str(value) for key, value in ports.items()})
    env.update({"INGEST_IMAGE": IMAGE, "BASE_IMAGE": BASE_IMAGE, "FLOWER_BASIC_AUTH": CREDENTIALS})
    # Two CPU workers on this 2-core machine: one CPU each (so one pool process each).
    env.update({"CPU_WORKER_CPUS": str(CPU_WORKER_CPUS), "CPU_WORKER_MEMORY": "2G"})
    files = [
        ROOT / "docker-compose.yml",
        DEPLOY / "compose.podman.yml",
        _test_overrides(tmp_path / "test.yml"),
    ]
    created = Stack(
        project=PROJECT_PREFIX + uuid.uuid4().hex[:8],
        compose_bin=compose_bin,
        files=files,
        env=env,
        log=tmp_path / "commands.log",
        redis_port=ports["REDIS_PORT"],
        postgres_port=ports["POSTGRES_PORT"],
        flower_port=ports["FLOWER_PORT"],
    )
    try:
        with phase("compose up (cpu-worker scaled to 2)"):
            created.compose("up", "-d", "--scale", "cpu-worker=2", timeout=300)
        yield created
    finally:
        with phase("teardown (containers, pod, volumes)"):
            remove_project(created.project, env, keep_logs=tmp_path / "container-logs")
        print(f"container logs and podman commands: {tmp_path}")


def test_stack_ingests_through_restarts_and_guards_flower(stack: Stack, tmp_path: Path) -> None:
    services = {
        name: stack.containers(name)
        for name in ("redis", "postgres", "fetch-worker", "cpu-worker", "deliver", "flower")
    }
    assert len(services["cpu-worker"]) == 2, services
    assert all(len(names) == 1 for service, names in services.items() if service != "cpu-worker"), services
    every = [name for names in services.values() for name in names]

    # What compose declared is what podman runs: restart policy, limits, health check.
    for name in every:
        host = stack.inspect(name)["HostConfig"]
        assert host["RestartPolicy"]["Name"] == "unless-stopped", name
        assert host["NanoCpus"] > 0 and host["Memory"] > 0, (name, host["NanoCpus"], host["Memory"])
        assert stack.inspect(name)["Config"].get("Healthcheck", {}).get("Test"), f"{name} has no health check"
    redis_name = services["redis"][0]

    # Ready: each container's own health check passes (the CPU workers load their models first).
    with phase("ready: every health check passes"):
        for name in every:
            _wait(lambda name=name: stack.healthy(name), 300, f"{name} healthy", every=2)

    # Redis keeps what it has (AOF, fsync every second) and refuses writes rather than evicting.
    config = stack.podman(
        "exec", redis_name, "redis-cli", "-p", str(stack.redis_port), "config", "get", "*"
    ).stdout.splitlines()
    pairs = dict(zip(config[::2], config[1::2], strict=False))
    assert pairs["appendonly"] == "yes" and pairs["appendfsync"] == "everysec", pairs
    assert pairs["maxmemory-policy"] == "noeviction" and int(pairs["maxmemory"]) > 0, pairs

    pages = load_pages()
    with serve_pages(pages) as server:
        urls = [server.url(page.id) + f"?v={n}" for page in pages for n in range(VARIANTS)]
        batch_dir = tmp_path / "batch"
        batch_dir.mkdir(mode=0o755)
        (batch_dir / "urls.txt").write_text("\n".join(urls) + "\n")
        (batch_dir / "urls.txt").chmod(0o644)
        batch_dir.chmod(0o755)
        started = time.monotonic()
        with phase(f"enqueue {len(urls)} URLs (compose run producer)"):
            out = stack.compose(
                "--profile",
                "tools",  # podman-compose runs a service of a profile only with its profile
                "run",
                "--rm",
                "-T",
                "--no-deps",
                "-v",
                f"{batch_dir}:/batch:ro",
                "producer",
                "ingest",
                "enqueue",
                "/batch/urls.txt",
            ).stdout
        found = re.findall(r"b-\d{8}-\d{6}-[0-9a-f]{8}", out)
        assert found, out
        batch = found[-1]

        _wait(lambda: _accounted(stack, batch) >= 3, 300, "3 URLs ended")
        worker = services["cpu-worker"][0]
        before = _accounted(stack, batch)
        with phase(f"restart {worker.removeprefix(stack.project + '_')} mid-batch"):
            stack.podman("restart", "--time", "30", worker)
        assert _accounted(stack, batch) < len(urls), "the batch ended before the worker restarted"

        _wait(lambda: _accounted(stack, batch) > before, 300, "a URL ended after the worker restart")
        in_flight = len(urls) - _accounted(stack, batch)
        with phase("restart redis mid-batch"):
            stack.podman("restart", "--time", "10", redis_name)
        assert in_flight > 0, "the batch ended before Redis restarted"
        back = time.monotonic()

        def finished() -> bool:
            status = _status(stack, batch)
            return bool(status and status.done and status.delivered_to(stack.settings.store_names))

        _wait(finished, 600, f"batch {batch} ended and delivered")
        TIMINGS.append(("batch: enqueue to every record delivered", time.monotonic() - started))
        TIMINGS.append(("batch: Redis back to every record delivered", time.monotonic() - back))
        print(f"{in_flight} of {len(urls)} URLs were in flight when Redis restarted")

    # Nothing lost, nothing twice: the ledger, PostgreSQL and the JSONL store agree.
    status = _status(stack, batch).as_dict()
    outcomes = status["outcomes"]
    assert sum(outcomes.values()) == len(urls), outcomes
    assert outcomes["dead"] == 0, (outcomes, _dead_letters(stack, batch))
    records = outcomes["published"] + outcomes["duplicate"]
    with psycopg.connect(stack.postgres_dsn, connect_timeout=5) as conn:
        rows = conn.execute("SELECT url, id FROM articles").fetchall()
    assert Counter(url for url, _id in rows) == Counter(urls), "PostgreSQL: each URL exactly once"
    assert len({record_id for _url, record_id in rows}) == len(rows) == records
    jsonl = stack.podman("exec", services["deliver"][0], "cat", "/data/articles.jsonl").stdout
    lines = [json.loads(line) for line in jsonl.splitlines() if line.strip()]
    assert Counter(str(line["url"]) for line in lines) == Counter(urls), "JSONL: each URL exactly once"

    # Both CPU worker containers took tasks (their nodes share the host's name, so count logs).
    # Each runs one pool process per CPU of its limit (the cgroup quota, not the host's cores).
    for name in services["cpu-worker"]:
        logs = stack.podman("logs", name)
        done = (logs.stdout + logs.stderr).count('"stage.done"')
        processes = stack.podman("top", name, "args").stdout.count("ingest worker")
        print(f"{name}: {done} stages done; {processes} processes (main + pool), {CPU_WORKER_CPUS}-CPU limit")
        assert done > 0, f"{name} ran no stage"
        assert processes == 1 + CPU_WORKER_CPUS, f"{name}: {processes - 1} pool processes"

    # After the restarts every container is healthy again (workers reconnected to Redis).
    for name in every:
        _wait(lambda name=name: stack.healthy(name), 120, f"{name} healthy after the restarts", every=2)

    # Flower: refused without credentials, answers with them, and sees the workers.
    assert _http(stack.flower_port, "/", None) == 401
    assert _http(stack.flower_port, "/api/workers", None) == 401
    assert _http(stack.flower_port, "/", CREDENTIALS) == 200
    assert _http(stack.flower_port, "/api/workers?refresh=1", CREDENTIALS) == 200
    print(f"outcomes {outcomes}; {len(rows)} PostgreSQL rows; {len(lines)} JSONL records")
