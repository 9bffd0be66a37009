"""worker.cpu_quota on fake cgroup filesystems: v2, v1, nested limits, none, and the fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker import cpu_quota
from worker.cpu_quota import available_cpus, cgroup_cpu_limit


@pytest.fixture(autouse=True)
def _many_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 16-core host with no cpuset limit unless a test says otherwise."""
    monkeypatch.setattr(cpu_quota.os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    monkeypatch.setattr(cpu_quota.os, "cpu_count", lambda: 16)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _v2(tmp_path: Path, own: str, limits: dict[str, str]) -> tuple[Path, Path]:
    """A v2 mount with ``cpu.max`` files at the given paths; the process lives in ``own``."""
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    (root / own.strip("/")).mkdir(parents=True, exist_ok=True)
    for path, value in limits.items():
        _write(root / path.strip("/") / "cpu.max", value + "\n")
    self_cgroup = tmp_path / "self-cgroup"
    _write(self_cgroup, f"0::{own}\n")
    return root, self_cgroup


def _v1(tmp_path: Path, mount: str, own: str, limits: dict[str, tuple[int, int]]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    (root / mount / own.strip("/")).mkdir(parents=True, exist_ok=True)
    for path, (quota, period) in limits.items():
        _write(root / mount / path.strip("/") / "cpu.cfs_quota_us", f"{quota}\n")
        _write(root / mount / path.strip("/") / "cpu.cfs_period_us", f"{period}\n")
    self_cgroup = tmp_path / "self-cgroup"
    _write(self_cgroup, f"12:memory:{own}\n4:cpu,cpuacct:{own}\n1:name=systemd:{own}\n0::/\n")
    return root, self_cgroup


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("150000 100000", 2),
        ("100000 100000", 1),
        ("50000 100000", 1),
        ("400000 100000", 4),
        ("max 100000", 16),
    ],
)
def test_cgroup_v2_quota_rounds_up(tmp_path: Path, cpu_max: str, expected: int) -> None:
    # A container's own cgroup is the root of its cgroup namespace: cpu.max at the mount.
    root, self_cgroup = _v2(tmp_path, "/", {"/": cpu_max})
    assert available_cpus(root, self_cgroup) == expected


def test_cgroup_v2_tightest_ancestor_wins(tmp_path: Path) -> None:
    root, self_cgroup = _v2(
        tmp_path,
        "/system.slice/worker.scope",
        {"/system.slice": "200000 100000", "/system.slice/worker.scope": "max 100000"},
    )
    assert cgroup_cpu_limit(root, self_cgroup) == 2
    assert available_cpus(root, self_cgroup) == 2


def test_cgroup_v2_path_not_visible_reads_the_mount(tmp_path: Path) -> None:
    # /proc/self/cgroup names a host path the container's mount does not have.
    root, self_cgroup = _v2(tmp_path, "/", {"/": "300000 100000"})
    _write(self_cgroup, "0::/machine.slice/libpod-abc.scope\n")
    assert available_cpus(root, self_cgroup) == 3


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_quota_and_period(tmp_path: Path, mount: str) -> None:
    root, self_cgroup = _v1(tmp_path, mount, "/libpod_parent/libpod-abc", {"/": (150000, 100000)})
    # The container's cgroup is mounted as the controller's root: its path is not there.
    assert available_cpus(root, self_cgroup) == 2


def test_cgroup_v1_nested_and_unlimited(tmp_path: Path) -> None:
    root, self_cgroup = _v1(
        tmp_path,
        "cpu",
        "/docker/abc",
        {"/": (-1, 100000), "/docker": (-1, 100000), "/docker/abc": (250000, 100000)},
    )
    assert available_cpus(root, self_cgroup) == 3
    root, self_cgroup = _v1(tmp_path / "none", "cpu", "/docker/abc", {"/docker/abc": (-1, 100000)})
    assert cgroup_cpu_limit(root, self_cgroup) is None
    assert available_cpus(root, self_cgroup) == 16


def test_affinity_caps_the_quota(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu_quota.os, "sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    root, self_cgroup = _v2(tmp_path, "/", {"/": "800000 100000"})
    assert available_cpus(root, self_cgroup) == 2


def test_no_cgroup_and_no_affinity_falls_back_to_cpu_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(cpu_quota.os, "sched_getaffinity", raising=False)
    assert available_cpus(tmp_path / "missing", tmp_path / "missing-self") == 16
    monkeypatch.setattr(cpu_quota.os, "cpu_count", lambda: None)
    assert available_cpus(tmp_path / "missing", tmp_path / "missing-self") == 1


def test_garbage_files_are_ignored(tmp_path: Path) -> None:
    root, self_cgroup = _v2(tmp_path, "/", {"/": "lots of cpus"})
    assert available_cpus(root, self_cgroup) == 16
    root, self_cgroup = _v1(tmp_path / "v1", "cpu", "/", {"/": (100000, 0)})
    assert available_cpus(root, self_cgroup) == 16


def test_never_less_than_one(tmp_path: Path) -> None:
    root, self_cgroup = _v2(tmp_path, "/", {"/": "1000 100000"})  # 0.01 CPU
    assert available_cpus(root, self_cgroup) == 1


def test_this_machine_gives_a_positive_count() -> None:
    assert available_cpus() >= 1
