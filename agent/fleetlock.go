package agent

import (
	"context"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// serveFleetLock answers the node's Zincati (package fleetlock) for the
// whole run, from the start: Zincati asks steady-state as soon as it starts,
// and is told to wait until the member is a healthy voter. A listen that
// fails is retried with capped backoff and shown as a problem; it never
// stops the agent.
func (a *Agent) serveFleetLock(ctx context.Context) (stop func()) {
	fl := a.cfg.FleetLock
	if fl.Disabled || fl.Address == "" { // "": a config not defaulted (tests)
		return func() {}
	}
	a.rec.Update(func(r *report.NodeReport) {
		r.FleetLock = &report.FleetLock{Address: fl.Address}
		fleetlock.ShowWindow(r.FleetLock, fleetlock.WindowOf(fl.MaintenanceWindow), a.now())
	})
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		h := fleetlock.Handler(a.fleetLock, a.log)
		b := backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
		for ctx.Err() == nil {
			err := fleetlock.Serve(ctx, fl.Address, h, func() {
				a.rec.SetProblems("fleetlock", nil)
				a.flush()
			})
			if err == nil || ctx.Err() != nil {
				return
			}
			a.log.Warn("FleetLock unavailable: Zincati cannot ask this node's agent for a reboot slot", "address", fl.Address, "err", err)
			a.rec.SetProblems("fleetlock", []problem.Problem{problem.FleetLockUnavailable.New("", err.Error())})
			a.flush()
			select {
			case <-time.After(b.Next()):
			case <-ctx.Done():
			}
		}
	}()
	return func() { cancel(); <-done }
}
