// Package depcheck imports every dependency of the design card so that
// `go mod tidy` keeps them pinned in go.mod even while a package that uses
// one is being rewritten. It has no code and is never imported.
package depcheck

import (
	_ "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	_ "github.com/containers/podman/v5/pkg/bindings/containers"
	_ "github.com/containers/podman/v5/pkg/bindings/images"
	_ "github.com/containers/podman/v5/pkg/specgen"
	_ "github.com/coreos/butane/config"
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/coreos/ignition/v2/config/v3_5"
	_ "go.etcd.io/etcd/client/v3"
	_ "go.etcd.io/etcd/server/v3/embed"
)
