# etcd-agent build, test and tooling. Everything is Go; the shell here is glue.
SHELL := /bin/bash
export CGO_ENABLED := 0
# remote: the Podman bindings talk to a socket only; openpgp: no cgo gpgme.
export GOFLAGS := -buildvcs=false -tags=remote,containers_image_openpgp

ETCD_VERSION := $(shell go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.defaultEtcdVersion=$(ETCD_VERSION)
BIN := bin

.PHONY: build test test-short test-node soak docs lint tools etcd-binaries etcd-v2 image etcd-v36-image podman-setup local bench clean

build: ## static, stripped agent binary with its version stamped
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/etcd-agent ./cmd/etcd-agent

tools: ## test tools: IMDS simulator, staticcheck (pinned in tools/go.mod)
	cd tools && GOBIN=$(CURDIR)/$(BIN) go install tool

etcd-binaries: ## etcd, etcdctl and etcdutl at the module's pinned version
	go build -trimpath -ldflags '-s -w' -o $(BIN)/etcd go.etcd.io/etcd/server/v3
	go build -trimpath -ldflags '-s -w' -o $(BIN)/etcdctl go.etcd.io/etcd/etcdctl/v3
	go build -trimpath -ldflags '-s -w' -o $(BIN)/etcdutl go.etcd.io/etcd/etcdutl/v3

etcd-v2: ## etcd v3.5 with the v2 keys API, only for the v2 discovery tests (built outside go.mod)
	@test -x $(BIN)/etcd-v2 || .ci/etcd-v2.sh $(BIN)/etcd-v2

image: etcd-binaries ## the etcd container image, laid out like gcr.io/etcd-development/etcd, tagged with the pinned version
	image/build.sh $(BIN)

etcd-v36-image: ## the etcd v3.6 image the rolling-upgrade test starts from (etcd v3.6 built outside go.mod)
	.ci/etcd-v36-image.sh

podman-setup: image ## root: Podman services (rootful + rootless user etcdtest) for the Podman tests; prints the env to export
	.ci/podman-setup.sh

test-short: tools ## fast tier: pure tables and single-process tests
	go test -short -count=1 ./...

test: tools etcd-binaries build ## full suite, including multi-node and Podman scenarios when their setup is present
	go test -count=1 -timeout 40m ./...

test-node: tools build ## root: three systemd nodes booted from the rendered Ignition (test/node; needs Podman with the etcd image, mmdebstrap)
	go test -tags=remote,containers_image_openpgp,nodetest -count=1 -v -timeout 40m -run TestNodes ./test/node/

# SOAK_SEED=<seed from a run's log> replays that run; SOAK_EVENTS=<n> changes its length;
# SOAK_RUNTIME=podman runs etcd in containers (needs the Podman test setup) and adds etcd crashes.
SOAK_EVENTS ?= 24
soak: tools build ## a year of churn in an hour: TestYearOfChurn, 24 seeded random reboots, refreshes, spot/rebalance notices and crashes under a writer
	SOAK_EVENTS=$(SOAK_EVENTS) go test -count=1 -v -timeout 90m -run 'TestYearOfChurn$$' ./test/fault/

docs: ## regenerate docs/cli (command reference, exit codes), docs/man and docs/config-reference.md
	go test -count=1 -run 'TestCLIReference|TestExitCodeTable' ./cmd/etcd-agent -update
	go test -count=1 -run TestConfigReference ./agent/config -update-reference

lint:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...
	$(BIN)/staticcheck ./... 

bench: build etcd-binaries ## figures vs plain etcd (startup, load, status, idle agent, size), replacement, status, snapshot, coordinated-reboot, hook-replacement and instance-refresh benchmarks
	go run ./cmd/etcd-agent-bench -bin $(BIN)
	go test -run '^$$' -bench 'Bootstrap3|ReplaceNode|DefragPass|NoSpaceRecovery' -benchtime 3x -timeout 30m ./agent/
	go test -run '^$$' -bench 'Status' -benchtime 50x ./agent/status/
	go test -run '^$$' -bench 'StopWithOpenStreams' -benchtime 3x ./agent/runtime/embedded/
	go test -run '^$$' -bench 'Snapshot' -benchtime 3x -timeout 60m ./agent/backup/
	go test -run '^$$' -bench 'RebootLeaderNode' -benchtime 5x -timeout 20m ./test/fault/
	go test -run '^$$' -bench 'HookReplacement|InstanceRefresh' -benchtime 3x -timeout 40m ./test/fault/

local: build ## a 3-node TLS cluster on 127.0.0.11-13 with embedded etcd, until Ctrl-C
	$(BIN)/etcd-agent local up --nodes 3

clean:
	rm -rf $(BIN)
