"""Keep deploy/k8s (and the multi-host compose override) honest without a cluster.

Every manifest parses; each Deployment runs what the docker-compose.yml service of the same
name runs, compose's variables at their defaults: the same image (pinned by the
kustomization), the same `ingest ...` command, the same health check, the same environment
(same values, but for where Redis, PostgreSQL and the credentials are). Every INGEST_*
variable the files name is a real setting, and together the ConfigMap and the Secret make
valid settings; the KEDA triggers watch the queues those settings name: kombu's Redis
transport keeps a queue as a list named after it, RabbitMQ as a queue of that name.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from config import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
WORKERS_OVERRIDE = ROOT / "deploy" / "compose.workers.yml"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SETTING_NAMES = {f"INGEST_{name.upper()}" for name in Settings.model_fields}
#: An INGEST_ variable named anywhere in a file (values, keys, comments alike).
INGEST_NAME = re.compile(r"\bINGEST_[A-Z0-9_]*[A-Z0-9]\b")
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
#: Compose variables: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}.
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
#: Where the services are and who may use them: deployment-specific, not compared.
PER_DEPLOYMENT = {"INGEST_REDIS_URL", "INGEST_POSTGRES_DSN", "INGEST_BROKER_URL", "FLOWER_BASIC_AUTH"}


def _defaults(value: object) -> str:
    """A compose value as compose reads it with none of its variables set."""

    def default(match: re.Match[str]) -> str:
        operator, text = match.group(2) or "", match.group(3) or ""
        if operator in ("-", ":-"):
            return text
        if operator in ("?", ":?"):
            return f"<required {match.group(1)}>"
        return ""

    return COMPOSE_VARIABLE.sub(default, str(value)).replace("$$", "$")


def _manifest_files() -> list[Path]:
    return sorted(path for path in K8S.rglob("*") if path.suffix in (".yaml", ".yml"))


def _objects() -> list[dict[str, Any]]:
    return [
        document
        for path in _manifest_files()
        if path.name != "kustomization.yaml"
        for document in yaml.safe_load_all(path.read_text())
        if document is not None
    ]


def _of_kind(kind: str, objects: list[dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in (objects or _objects()) if obj["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{deployment['metadata']['name']}: one container per pod"
    return containers[0]


def _data(obj: dict[str, Any]) -> dict[str, str]:
    return {**(obj.get("data") or {}), **(obj.get("stringData") or {})}


def _environment(container: dict[str, Any]) -> dict[str, str]:
    """The variables the container gets: its ConfigMaps and Secrets (envFrom), then its env."""
    config_maps, secrets = _of_kind("ConfigMap"), _of_kind("Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(_data(config_maps[source["configMapRef"]["name"]]))
        else:
            env.update(_data(secrets[source["secretRef"]["name"]]))
    for item in container.get("env") or []:
        env[item["name"]] = str(item.get("value", ""))
    return env


def _manifest_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a pod of the manifests runs with (ConfigMap and Secret of the workers)."""
    for name in [key for key in os.environ if key.startswith("INGEST_")]:
        monkeypatch.delenv(name)
    env = _environment(_container(_of_kind("Deployment")["cpu-worker"]))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_every_manifest_parses() -> None:
    files = _manifest_files()
    assert files, "no manifests in deploy/k8s"
    for path in files:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        assert documents, f"{path.name} holds no object"
        for document in documents:
            assert isinstance(document, dict), path.name
            assert {"apiVersion", "kind"} <= document.keys(), f"{path.name}: {document}"
            if path.name != "kustomization.yaml":
                assert document["metadata"]["name"], path.name
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), f"kustomization lists missing {resource}"
    assert yaml.safe_load(WORKERS_OVERRIDE.read_text())["services"]


def test_a_deployment_per_long_running_compose_service() -> None:
    deployments = _of_kind("Deployment")
    built = {name for name, service in SERVICES.items() if "build" in service and not service.get("profiles")}
    assert built <= deployments.keys(), f"no Deployment for {sorted(built - deployments.keys())}"
    assert deployments.keys() <= SERVICES.keys(), (
        f"not in compose: {sorted(deployments.keys() - SERVICES.keys())}"
    )


def test_deployments_run_the_compose_commands() -> None:
    for name, deployment in _of_kind("Deployment").items():
        service, container = SERVICES[name], _container(deployment)
        # compose `command` replaces the image's CMD, as Kubernetes `args` does; compose
        # `entrypoint` its ENTRYPOINT, as `command` does.
        assert container.get("args") == [_defaults(part) for part in service["command"]], name
        assert container.get("command") == service.get("entrypoint"), name


def test_deployments_run_the_compose_health_checks() -> None:
    for name, deployment in _of_kind("Deployment").items():
        check = SERVICES[name].get("healthcheck") or {}
        test = [_defaults(part) for part in check.get("test") or []]
        if not test or check.get("disable"):
            continue
        assert test[0] == "CMD", f"{name}: an exec probe needs compose's CMD form"
        container = _container(deployment)
        probes = [
            container[key] for key in ("startupProbe", "livenessProbe", "readinessProbe") if key in container
        ]
        assert probes, f"{name}: compose checks its health, the Deployment does not"
        for probe in probes:
            assert probe["exec"]["command"] == test[1:], name


def test_deployments_run_the_compose_image() -> None:
    images = {name: _container(obj)["image"] for name, obj in _of_kind("Deployment").items()}
    for name, image in images.items():
        service = SERVICES[name]
        assert "build" in service, f"{name}: compose builds the project's image for it"
        assert image == _defaults(service.get("image", "news-ingest")), name
    assert len(set(images.values())) == 1, f"one image for every role: {images}"
    # What runs is pinned: the kustomization sets the tag (compose's default is `latest`).
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    pins = {item["name"]: item for item in kustomization.get("images") or []}
    (image,) = set(images.values())
    pin = pins[image.rsplit(":", 1)[0]]
    assert pin.get("digest") or pin.get("newTag") == VERSION, pin


def test_deployments_get_the_compose_environment() -> None:
    for name, deployment in _of_kind("Deployment").items():
        provided = _environment(_container(deployment))
        declared = {key: _defaults(value) for key, value in (SERVICES[name].get("environment") or {}).items()}
        missing = sorted(set(declared) - set(provided))
        assert not missing, f"{name}: compose sets {missing}, the Deployment does not"
        for key, value in declared.items():
            if key not in PER_DEPLOYMENT:
                assert provided[key] == value, f"{name}: {key} is {provided[key]!r}, compose's {value!r}"


def test_named_ingest_variables_are_settings() -> None:
    for path in [*_manifest_files(), WORKERS_OVERRIDE]:
        unknown = sorted(set(INGEST_NAME.findall(path.read_text())) - SETTING_NAMES)
        assert not unknown, f"{path.relative_to(ROOT)} names unknown settings {unknown}"


def test_manifest_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _manifest_settings(monkeypatch)  # validators run: stores usable, limits ordered
    assert settings.store_names
    cpu = _container(_of_kind("Deployment")["cpu-worker"])
    processes = int(_environment(cpu)["INGEST_CPU_CONCURRENCY"])
    resources = cpu["resources"]
    assert processes == int(resources["requests"]["cpu"]), "one pool process per requested core"
    assert processes == int(resources["limits"]["cpu"]), "the CPU quota the worker reads says the same"


def test_keda_watches_the_queues_of_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _manifest_settings(monkeypatch)
    queues = {"fetch": settings.fetch_queue, "cpu": settings.cpu_queue}
    deployments = _of_kind("Deployment")
    redis_url = urlsplit(settings.effective_redis_url)
    files = {path.name: path for path in _manifest_files()}
    seen = set()
    for file in ("keda-redis.yaml", "keda-rabbitmq.yaml"):
        objects = [doc for doc in yaml.safe_load_all(files[file].read_text()) if doc is not None]
        scaled = _of_kind("ScaledObject", objects)
        assert set(scaled) == {"fetch-worker", "cpu-worker"}, file
        for name, obj in scaled.items():
            target = obj["spec"]["scaleTargetRef"]["name"]
            args = _container(deployments[target])["args"]
            queue = queues[args[args.index("--queues") + 1]]
            (trigger,) = obj["spec"]["triggers"]
            meta = trigger["metadata"]
            if trigger["type"] == "redis":
                assert meta["listName"] == queue, f"{file} {name}"
                assert meta["address"] == f"{redis_url.hostname}:{redis_url.port}", f"{file} {name}"
                assert meta.get("databaseIndex", "0") == (redis_url.path.strip("/") or "0"), f"{file} {name}"
                auth = _of_kind("TriggerAuthentication", objects)[trigger["authenticationRef"]["name"]]
                for ref in auth["spec"]["secretTargetRef"]:
                    assert ref["key"] in _data(_of_kind("Secret")[ref["name"]]), ref
            else:
                assert trigger["type"] == "rabbitmq", file
                assert meta["queueName"] == queue, f"{file} {name}"
                assert meta["hostFromEnv"] == "INGEST_BROKER_URL", f"{file} {name}"
            seen.add((trigger["type"], queue))
    assert seen == {(kind, queue) for kind in ("redis", "rabbitmq") for queue in queues.values()}


def test_workers_override_names_compose_services() -> None:
    override = yaml.safe_load(WORKERS_OVERRIDE.read_text())["services"]
    assert override.keys() <= SERVICES.keys()
    for name, service in override.items():
        for key in service.get("environment") or {}:
            assert key in SETTING_NAMES, f"{name} sets unknown setting {key}"
