"""How many CPUs this process may really use: the container's CPU quota, not the host's cores.

In a container ``os.cpu_count()`` is the host's core count; a CPU worker sized by it starts
one prefork process (about 0.6 GB each, the language models) per host core however small its
``cpus:`` limit. :func:`available_cpus` takes the smallest of:

* the cgroup CPU quota, rounded up: cgroup v2 ``cpu.max`` (``"150000 100000"`` is 1.5 CPUs,
  ``"max 100000"`` none), cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (a quota of
  -1: none), read in this process's own cgroup (``/proc/self/cgroup``) and each of its
  ancestors up to the mount point (the tightest wins: a limit on a parent binds its children);
* the CPUs the process may be scheduled on (``os.sched_getaffinity``: ``cpuset`` limits);

and falls back to ``os.cpu_count()`` when none is known. Never less than 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
#: Names a cgroup v1 cpu controller is mounted under (Docker and podman link them to each other).
V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def available_cpus(root: Path | str = CGROUP_ROOT, self_cgroup: Path | str = SELF_CGROUP) -> int:
    """CPUs this process may use: ceil of its cgroup quota, capped by its CPU affinity."""
    limits = [limit for limit in (cgroup_cpu_limit(Path(root), Path(self_cgroup)), _affinity()) if limit]
    if not limits:
        return max(1, os.cpu_count() or 1)
    return max(1, min(limits))


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int | None:
    """The tightest CPU quota of this process's cgroup and its ancestors, rounded up; None if unlimited."""
    v2, v1 = _own_paths(self_cgroup)
    quotas: list[float] = []
    if (root / "cgroup.controllers").exists():  # the unified hierarchy (v2) is mounted here
        quotas += [q for d in _chain(root, v2) if (q := _v2_quota(d / "cpu.max")) is not None]
    else:
        for mount in V1_CPU_MOUNTS:
            if (root / mount).is_dir():
                quotas += [q for d in _chain(root / mount, v1) if (q := _v1_quota(d)) is not None]
                break
    if not quotas:
        return None
    return max(1, math.ceil(min(quotas) - 1e-9))


def _own_paths(self_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup path in the v2 hierarchy and in the v1 cpu controller's."""
    v2 = v1 = "/"
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return v2, v1
    for line in lines:
        _hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if controllers == "":
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _chain(mount: Path, path: str) -> list[Path]:
    """The directory of ``path`` under ``mount`` and its ancestors up to ``mount``; only the
    mount itself when the path is not visible there (a container's own cgroup is mounted as
    the root of its cgroup filesystem)."""
    own = mount / path.strip("/")
    if not own.is_dir():
        return [mount]
    chain = [own]
    while chain[-1] != mount:
        chain.append(chain[-1].parent)
    return chain


def _v2_quota(cpu_max: Path) -> float | None:
    try:
        quota, _, period = cpu_max.read_text().strip().partition(" ")
    except OSError:
        return None
    if quota == "max" or not quota:
        return None
    try:
        return int(quota) / int(period or 100000)
    except (ValueError, ZeroDivisionError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text().strip())
        period = int((directory / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def _affinity() -> int | None:
    try:
        return len(os.sched_getaffinity(0)) or None
    except (AttributeError, OSError):  # not on every platform
        return None


if __name__ == "__main__":
    print(available_cpus())
