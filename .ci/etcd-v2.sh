#!/usr/bin/env bash
# Builds an etcd v3.5 server binary that still serves the v2 keys API
# (--enable-v2), the protocol v2 discovery speaks. Used only by the
# discovery package's V2 tests. etcd >= 3.7 removed v2, and the project pins
# one etcd version, so this is built in a throwaway module outside go.mod.
#
# usage: .ci/etcd-v2.sh [OUT]   (default OUT: bin/etcd-v2 next to this repo)
set -euo pipefail

ETCD_V2_VERSION="${ETCD_V2_VERSION:-v3.5.24}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/bin/etcd-v2}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# The repository's GOFLAGS (build tags, -buildvcs) do not apply to this module.
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOWORK=off
go mod init etcd-v2-build >/dev/null 2>&1
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_V2_VERSION}"
go mod download go.etcd.io/etcd/server/v3
go build -trimpath -ldflags '-s -w' -o "$out" go.etcd.io/etcd/server/v3
echo "built $out ($("$out" --version | head -1))"
