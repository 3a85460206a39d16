package agent

import (
	"context"

	"github.com/etcd-agent/etcd-agent/agent/metrics"
	"github.com/etcd-agent/etcd-agent/agent/problem"
)

// serveMetrics serves the agent's Prometheus metrics (metrics.enabled) until
// the returned stop is called. They are read from the agent's report at each
// scrape. A listener that cannot open is retried and shown as a problem; it
// never stops the agent.
func (a *Agent) serveMetrics(ctx context.Context) (stop func()) {
	if !a.cfg.Metrics.Enabled {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	srv := &metrics.Server{
		Address:  a.cfg.Metrics.Address,
		Registry: metrics.NewRegistry(a.rec.Snapshot),
		Logger:   a.log,
		OnListen: func(err error) {
			if err == nil {
				a.rec.SetProblems("metrics", nil)
				return
			}
			a.rec.SetProblems("metrics", []problem.Problem{problem.MetricsUnavailable.New("", err.Error())})
			a.flush()
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ctx); err != nil {
			a.log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}
