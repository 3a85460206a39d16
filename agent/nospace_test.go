package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/internal/testnet"
	"github.com/etcd-agent/etcd-agent/systemd/notifytest"
)

// TestNoSpaceReportedAsProblem fills a 3-node cluster (quota 64 MiB) with
// 1 MiB values until etcd raises NOSPACE. The agent must say so in words in
// its STATUS= line and report, as the same problem (alarm-nospace, critical)
// that its metrics count, never as raw "memberID:… alarm:NOSPACE" text.
func TestNoSpaceReportedAsProblem(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	block := h.staticDiscovery(1, 2, 3)
	nodes := make([]*node, 3)
	for i := range nodes {
		cfg := h.config(i+1, 3, block)
		cfg.Etcd.QuotaBackendBytes = 64 << 20
		if i == 0 {
			cfg.Metrics.Enabled = true
			cfg.Metrics.Address = fmt.Sprintf("%s:%d", h.ip(1), testnet.FreePort(t, h.ip(1)))
		}
		nodes[i] = h.start(ctx, i+1, cfg)
	}
	for _, n := range nodes {
		n.waitReady(t, readyTimeout)
	}
	n1 := nodes[0]
	cli := h.client(n1.agent.Report().ClientURL, n1.certDir())
	defer cli.Close()

	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer wcancel()
	value := strings.Repeat("x", 1<<20)
	full := false
	for i := 0; i < 128 && !full; i++ {
		_, err := cli.Put(wctx, fmt.Sprintf("/big/%03d", i), value)
		switch {
		case errors.Is(err, rpctypes.ErrNoSpace):
			full = true
		case err != nil:
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if !full {
		t.Fatal("wrote twice the quota without NOSPACE")
	}

	// The STATUS= line names it in words.
	msgs, err := n1.notify.Until(wctx, func(m string) bool {
		return strings.Contains(notifytest.Field(m, "STATUS"), "database space exceeded")
	})
	if err != nil {
		t.Fatalf("no STATUS= naming the NOSPACE alarm: %v; seen %q", err, msgs)
	}
	line := notifytest.Field(msgs[len(msgs)-1], "STATUS")
	if strings.Contains(line, "memberID:") || strings.Contains(line, "alarm:NOSPACE") || !strings.Contains(line, "refuses writes; reads still work") {
		t.Errorf("STATUS=%s: want the alarm in plain words", line)
	}

	// The report and the metrics hold the same problem.
	url := "http://" + n1.cfg.Metrics.Address + "/metrics"
	fams, r := scrapeUntil(t, wctx, url, n1, func(fams map[string]*dto.MetricFamily, r report.NodeReport) bool {
		v, _ := sample(fams, "etcd_agent_problems", "code="+string(problem.AlarmNoSpace.Code), "severity=critical")
		return v >= 1 && hasCode(r.Problems, problem.AlarmNoSpace.Code)
	})
	checkMatchesReport(t, fams, r)
	for _, p := range r.Problems {
		if p.Code != problem.AlarmNoSpace.Code {
			continue
		}
		if p.Severity != problem.Critical || p.Fix == "" || p.Subject == r.Name && !strings.Contains(p.Text, "quota 64.0 MiB") {
			t.Errorf("report problem %+v: want critical with a fix (and the quota for the local member)", p)
		}
	}
	t.Logf("STATUS=%s", line)
}
