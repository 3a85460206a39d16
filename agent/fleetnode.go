package agent

import (
	"context"
	"errors"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/fleet"
	"github.com/etcd-agent/etcd-agent/agent/identity"
	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// fleetNode is the node as the fleet job (agent/fleet) sees it.
type fleetNode struct{ jobNode }

var _ fleet.Node = fleetNode{}

// Survey implements fleet.Node.
func (n fleetNode) Survey(ctx context.Context) (uint64, []membership.ClusterMember, error) {
	return n.a.members.Survey(ctx)
}

// Ready implements fleet.Node: READY=1 was sent.
func (n fleetNode) Ready() bool {
	select {
	case <-n.a.ready:
		return true
	default:
		return false
	}
}

// Standby implements fleet.Node.
func (n fleetNode) Standby() bool { return n.a.rec.Snapshot().Phase == report.PhaseStandby }

// LeaveState implements fleet.Node.
func (n fleetNode) LeaveState() (left, leaving bool) {
	m, ok := sidefile.ReadLeaveMarker(n.a.cfg.Node.DataDir)
	if !ok {
		return false, false
	}
	return m.State == sidefile.Left, m.State != sidefile.Left
}

// Leave implements fleet.Node.
func (n fleetNode) Leave(ctx context.Context, guard membership.LeaveGuard, progress func(string)) error {
	n.a.setPhase(report.PhaseLeaving, "leaving the cluster on an EC2 notice")
	return n.a.members.Leave(ctx, guard, progress)
}

// Departed implements fleet.Node.
func (n fleetNode) Departed() error { return n.a.leftError() }

// SetProblems implements fleet.Node.
func (n fleetNode) SetProblems(ps []problem.Problem) {
	n.a.rec.SetProblems("fleet", ps)
	n.a.flush()
}

// newFleetJob is the fleet job when fleet.notices is "imds" (nil: none).
func (a *Agent) newFleetJob() *fleet.Job {
	if a.cfg.Fleet.Notices != "imds" {
		return nil
	}
	as := a.cfg.Fleet.AutoScaling
	s := fleet.Settings{LaunchHook: as.LaunchHook, TerminateHook: as.TerminateHook, HeartbeatEvery: as.HeartbeatInterval.D(),
		DesiredSize: a.cfg.Cluster.Size}
	if as.TerminateHook != "" {
		// Make-before-break needs the terminate hook to hold the instance.
		s.ReplacementWait = as.ReplacementWait.D()
	}
	if as.Hooks() {
		s.NewHooks = a.newHooks
	}
	return fleet.NewJob(fleetNode{a.node}, a.fleetIMDS(), s)
}

// fleetIMDS reads the notices: two short attempts per item, since the next
// round (fleet.interval later) is the retry.
func (a *Agent) fleetIMDS() *identity.Reader {
	return identity.IMDS{Endpoint: a.cfg.Fleet.IMDSEndpoint, MaxAttempts: 2, AttemptTimeout: 2 * time.Second, Logger: a.log}.NewReader()
}

// newHooks builds the Auto Scaling client for this instance, in the
// configured region or the instance's own.
func (a *Agent) newHooks(ctx context.Context, instanceID string) (fleet.Hooks, error) {
	as := a.cfg.Fleet.AutoScaling
	region := as.Region
	if region == "" {
		region = a.id.Region
	}
	return fleet.NewASG(ctx, fleet.ASGSettings{Group: as.Group, Region: region, Endpoint: as.Endpoint}, instanceID)
}

// abandonLaunch completes the launch hook with ABANDON when the agent
// stops on a configuration error: the group replaces the instance at once
// instead of waiting out the hook's timeout.
func (a *Agent) abandonLaunch(runErr error) {
	var cerr *config.Error
	as := a.cfg.Fleet.AutoScaling
	if !errors.As(runErr, &cerr) || as.LaunchHook == "" || a.cfg.Fleet.Notices != "imds" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	imd := a.fleetIMDS()
	defer imd.Close()
	if err := fleet.Abandon(ctx, imd, as.LaunchHook, a.newHooks); err != nil {
		a.log.Warn("launch hook: ABANDON after a configuration error failed", "hook", as.LaunchHook, "err", err)
		return
	}
	a.log.Warn("launch hook completed with ABANDON: configuration error", "hook", as.LaunchHook, "err", runErr)
}
