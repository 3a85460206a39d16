// Package node declares what the agent's jobs may know and do on their node.
// A job depends on a narrow interface (its own, embedding these), never on
// the agent itself, so it can be read, and tested, alone: like etcd's version
// monitor, which takes a small Server interface instead of the server.
//
// The agent implements every interface here (agent/node.go).
package node

import (
	"context"
	"log/slog"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
	"github.com/etcd-agent/etcd-agent/agent/health"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Node is what every job knows of its node and how it tells the operator.
type Node interface {
	// Config is the node's configuration (read only).
	Config() *config.Config
	// Identity is the node's identity (name, addresses, instance).
	Identity() identity.Identity
	Logger() *slog.Logger
	// Now is the clock.
	Now() time.Time
	// Recorder holds the node's report: decisions, problems, phase.
	Recorder() *report.Recorder
	// Publish writes the report where `etcd-agent status` and the metrics
	// read it.
	Publish()
	// SetStatus sets the phase and the STATUS= line, and publishes.
	SetStatus(phase report.Phase, msg string)
}

// Clients reach etcd.
type Clients interface {
	// Local is the client to this node's member (nil while etcd is not
	// started).
	Local() *clientv3.Client
	// Cluster is a client to the other members, for what a learner cannot
	// serve (member list, promotion); it fails when no other member's
	// address is known.
	Cluster() (*clientv3.Client, error)
	// Dial connects to eps with the agent's client certificate.
	Dial(eps []string) (*clientv3.Client, error)
}

// Etcd is the local member as jobs may drive it.
type Etcd interface {
	// Spec is the spec the member runs now.
	Spec() etcdconf.Spec
	// Probe asks the member whether it is healthy, a voter and caught up.
	Probe(ctx context.Context) health.Health
	// Restart stops the member and starts it with spec, and records spec as
	// the applied one once etcd started with it. The restart counts as
	// planned until end is called (after the caller waited for the member's
	// health): etcd's exits meanwhile are not runtime problems, and
	// PlannedExit says how it exited. One planned restart runs at a time:
	// Restart waits for the end of another. end is never nil and may be
	// called more than once.
	Restart(ctx context.Context, spec etcdconf.Spec) (end func(), err error)
	// PlannedExit is how etcd exited during the latest planned restart
	// ("" when it has not).
	PlannedExit() string
}
