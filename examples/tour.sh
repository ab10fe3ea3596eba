#!/usr/bin/env bash
# A short scripted tour of the containers-storage CLI on a throw-away store.
# It creates layers, an image with big data and a container, mounts the container,
# lists everything as text and JSON, and cleans up.  Run: bash examples/tour.sh
set -euo pipefail

driver=${DRIVER:-vfs}
work=$(mktemp -d)
cs() { python3 -m containers_storage --graph "$work/root" --run "$work/run" --storage-driver "$driver" "$@"; }
cleanup() { cs shutdown -f >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== store at $work ($driver driver)"
# create-* print the new ID, then one tab-indented line per name.
base=$(cs create-layer -n base | head -n1)
top=$(cs create-layer -n app "$base" | head -n1)
echo "layers: base=$base top=$top"

image=$(cs create-image -n example/app:latest -m '{"purpose":"tour"}' "$top" | head -n1)
printf '{"schemaVersion":2}' | cs set-image-data "$image" manifest
printf '{"architecture":"amd64"}' | cs set-image-data "$image" "sha256:$(printf '{"architecture":"amd64"}' | sha256sum | cut -d' ' -f1)"
echo "image: $image"

ctr=$(cs create-container -n tour-ctr example/app:latest | head -n1)
echo "container: $ctr"

echo "== layers (tree)"
cs layers -t
echo "== images"
cs images
echo "== image -j"
cs image -j example/app:latest
echo

mnt=$(cs mount tour-ctr)
echo "== mounted tour-ctr at $mnt"
echo hello > "$mnt/hello.txt"
cs mounted tour-ctr
cs unmount tour-ctr

echo "== names and metadata"
cs add-names -n example/app:1.0 "$image"
cs get-names "$image"
cs metadata -q "$image"
echo

echo "== status"
cs status 2>&1

echo "== cleanup"
cs delete-container tour-ctr
cs delete-image "$image" 2>&1
cs layers -j
echo
echo "tour finished"
