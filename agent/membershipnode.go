package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/dnsrecords"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/runtime"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// membershipNode is the agent as the membership job sees it.
type membershipNode struct{ jobNode }

var _ membership.Node = membershipNode{}

// Discovery implements membership.Node.
func (n membershipNode) Discovery() (discovery.Source, error) { return n.a.discovery() }

// EtcdRuntime implements membership.Node.
func (n membershipNode) EtcdRuntime() runtime.Runtime { return n.a.opts.Runtime }

// StopEtcd implements membership.Node.
func (n membershipNode) StopEtcd(ctx context.Context) error { return n.StopAndForget(ctx) }

// WithdrawClientRecords implements membership.ClientRecords through the DNS
// job: "" when the agents keep no client records.
func (n membershipNode) WithdrawClientRecords(ctx context.Context, name, clientURL string) (string, error) {
	if !n.a.cfg.Clients.Route53.Enabled() {
		return "", nil
	}
	changes, err := n.a.dns.Withdraw(ctx, dnsrecords.Member{Name: name, ClientURLs: []string{clientURL}})
	if err != nil {
		return "", err
	}
	if len(changes) == 0 {
		return "client DNS records: none left to withdraw", nil
	}
	return fmt.Sprintf("client DNS records withdrawn (%d changes)", len(changes)), nil
}

// SupersededBeforeRestart implements membership.Superseded through the
// recovery job, which keeps the recovery records.
func (n membershipNode) SupersededBeforeRestart(ctx context.Context) *membership.RejoinNeeded {
	return rejoinFor(n.a.recovery.SupersededBeforeRestart(ctx))
}

// SupersededByRecovery implements membership.Superseded: the registry's
// record within timeout, then the replaced cluster's quorum (bounded by the
// recovery job).
func (n membershipNode) SupersededByRecovery(ctx context.Context, timeout time.Duration, unhealthySince time.Time) (*membership.RejoinNeeded, bool) {
	s, answered := n.a.recovery.AsideByRegistry(ctx, timeout, unhealthySince)
	return rejoinFor(s), answered
}

// SupersededByAnswer implements membership.Superseded.
func (n membershipNode) SupersededByAnswer(ctx context.Context, cli *clientv3.Client, dataClusterID uint64, unhealthySince time.Time) *membership.RejoinNeeded {
	return rejoinFor(n.a.recovery.AsideByAnswer(ctx, cli, dataClusterID, unhealthySince))
}

// rejoinFor is the rejoin a replaced cluster calls for (nil when s is).
func rejoinFor(s *recovery.Superseded) *membership.RejoinNeeded {
	if s == nil {
		return nil
	}
	return &membership.RejoinNeeded{Reason: s.Reason}
}

func asRejoin(err error) (*membership.RejoinNeeded, bool) {
	var r *membership.RejoinNeeded
	return r, errors.As(err, &r)
}
