#!/usr/bin/env bash
# build.sh builds the etcd container image from the etcd and etcdctl binaries of
# the etcd version pinned in go.mod and tags it like the official image:
#   gcr.io/etcd-development/etcd:<version> and localhost/etcd:<version>
# Usage: image/build.sh [bin-dir]   (default: <repo>/bin, filled by make etcd-binaries)
# Environment: PODMAN (default podman), ETCD_VERSION (default: from go.mod).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
bindir=${1:-$repo/bin}
podman=${PODMAN:-podman}
ver=${ETCD_VERSION:-$(cd "$repo" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)}

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

# The image is FROM scratch: the binaries must be static (CGO_ENABLED=0) and of the
# pinned version. Reuse bin/ when it qualifies, else build them into the context.
usable() { # binary
  [[ -x $1 ]] && go version -m "$1" 2>/dev/null | grep -q 'CGO_ENABLED=0' &&
    go version -m "$1" | grep -Eq "^[[:space:]]+(mod|dep)[[:space:]]+go.etcd.io/etcd/(server|etcdctl)/v3[[:space:]]+$ver"
}
for b in etcd etcdctl; do
  if usable "$bindir/$b"; then
    cp "$bindir/$b" "$ctx/$b"
  else
    pkg=go.etcd.io/etcd/server/v3
    [[ $b == etcdctl ]] && pkg=go.etcd.io/etcd/etcdctl/v3
    echo "build.sh: building static $b $ver" >&2
    (cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$ctx/$b" "$pkg")
  fi
done
cp "$here/Containerfile" "$ctx/"
"$podman" build -q --pull=never -f "$ctx/Containerfile" \
  -t "gcr.io/etcd-development/etcd:$ver" -t "localhost/etcd:$ver" "$ctx" >/dev/null
echo "gcr.io/etcd-development/etcd:$ver"
