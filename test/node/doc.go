// Package node boots etcd-agent nodes the way Fedora CoreOS would run them,
// with systemd as PID 1: a Debian container image built here (mmdebstrap,
// podman import) receives exactly the files and units of the Ignition config
// `etcd-agent butane` renders (laid down by test/node/cmd/node-ignite, as
// Ignition would), its identity from AWS's IMDS simulator at 169.254.169.254
// and the etcd image in its agent user's rootless Podman storage. The tests
// check the unit's behaviour through systemctl and journalctl inside the
// nodes, and drive Zincati's reboot sequence through each node's agent
// (test/node/cmd/node-fleetlock standing in for Zincati, `systemctl reboot`
// for its reboot). They are behind the build tag nodetest (`make test-node`), so
// `go test ./...` does not run them; they need root, Podman and mmdebstrap.
package node
