#!/usr/bin/env bash
# Build the stack's Redis and PostgreSQL images from Debian's packages on the local base
# (localhost/news-ingest-redis:bookworm, localhost/news-ingest-postgres:bookworm). Each is
# reused when it exists; --force rebuilds them. Needs base-image.sh's image first.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
base="${BASE_IMAGE:-localhost/news-ingest-base:bookworm}"
ca=/etc/ssl/certs/ca-certificates.crt
for service in redis postgres; do
  image="localhost/news-ingest-$service:bookworm"
  if [[ "${1:-}" != "--force" ]] && podman image exists "$image"; then
    echo "$image exists: reused"
    continue
  fi
  start=$SECONDS
  podman build --format docker --build-arg "BASE_IMAGE=$base" -v "$ca:$ca:ro" \
    -f "$here/$service.Containerfile" -t "$image" "$here"
  echo "$image built in $((SECONDS - start)) s"
done
