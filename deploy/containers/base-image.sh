#!/usr/bin/env bash
# Build localhost/news-ingest-base:bookworm, a Debian bookworm root with Python 3.11, from
# Debian's packages (public images cannot be pulled on this kind of machine). Reused when it
# already exists; --force rebuilds it. Takes about a minute.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
image="${BASE_IMAGE:-localhost/news-ingest-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [[ "${1:-}" != "--force" ]] && podman image exists "$image"; then
  echo "base image $image exists: reused"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: run $here/setup.sh" >&2; exit 1; }
root="$(mktemp -d /var/tmp/news-ingest-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
start=$SECONDS
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
# apt inside builds: no recommends, no docs, a clean cache in every layer.
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$root/etc/apt/apt.conf.d/90news-ingest"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$image"
echo "base image $image built in $((SECONDS - start)) s"
