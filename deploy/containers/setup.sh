#!/usr/bin/env bash
# Make this machine run the stack in containers, as CI does on a fresh machine: podman with
# runc (Debian's packages), debootstrap for the base image, and podman-compose from PyPI
# (the `containers` extra: Debian's 1.0.3 cannot combine network_mode: host with the default
# network, 1.6 can) into the project's venv. Idempotent: installs only what is missing.
# Usage: deploy/containers/setup.sh [VENV]   (default: .venv of the project)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.venv}"

missing=()
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q podman runc debootstrap
fi
if [[ ! -x "$venv/bin/podman-compose" ]]; then
  echo "installing podman-compose into $venv"
  "$venv/bin/python" -m pip install --quiet -e "$root[containers]"
fi
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
podman --version
"$venv/bin/podman-compose" --version 2>/dev/null | head -1
