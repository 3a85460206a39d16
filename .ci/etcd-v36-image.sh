#!/usr/bin/env bash
# Builds the etcd v3.6 container image the rolling-upgrade test starts from
# (v3.6 -> the pinned v3.7), laid out and tagged like `make image`:
#   gcr.io/etcd-development/etcd:<v3.6.x> and localhost/etcd:<v3.6.x>
# The project pins one etcd version, so etcd and etcdctl v3.6 are built in a
# throwaway module outside go.mod (as .ci/etcd-v2.sh builds etcd 3.5).
#
# usage: .ci/etcd-v36-image.sh   Environment: ETCD_V36_VERSION, PODMAN.
set -euo pipefail

ETCD_V36_VERSION="${ETCD_V36_VERSION:-v3.6.16}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
podman=${PODMAN:-podman}
if "$podman" image exists "gcr.io/etcd-development/etcd:$ETCD_V36_VERSION"; then
  echo "gcr.io/etcd-development/etcd:$ETCD_V36_VERSION"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/mod" "$work/bin"
cd "$work/mod"

# The repository's GOFLAGS (build tags, -buildvcs) do not apply to this module.
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off
go mod init etcd-v36-build >/dev/null 2>&1
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
GO
go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_V36_VERSION}" -require="go.etcd.io/etcd/etcdctl/v3@${ETCD_V36_VERSION}"
go mod download go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
go build -trimpath -ldflags '-s -w' -o "$work/bin/etcd" go.etcd.io/etcd/server/v3
go build -trimpath -ldflags '-s -w' -o "$work/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
# image/build.sh reuses binaries of the version asked for.
ETCD_VERSION="$ETCD_V36_VERSION" PODMAN="$podman" GOFLAGS= "$repo/image/build.sh" "$work/bin"
