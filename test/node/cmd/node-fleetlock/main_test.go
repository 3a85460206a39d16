package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
)

// locker refuses the first refusals requests of each kind, then grants,
// and records what it was asked.
type locker struct {
	mu       sync.Mutex
	refusals int
	asked    []string
}

func (l *locker) answer(op string, c fleetlock.Client) fleetlock.Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, op+" "+c.ID+" "+c.Group)
	if len(l.asked) <= l.refusals {
		return fleetlock.Decision{Kind: fleetlock.KindSlotTaken, Reason: "another node holds the slot"}
	}
	return fleetlock.Decision{Grant: true, Reason: "ok"}
}

func (l *locker) PreReboot(_ context.Context, c fleetlock.Client) fleetlock.Decision {
	return l.answer("pre-reboot", c)
}

func (l *locker) SteadyState(_ context.Context, c fleetlock.Client) fleetlock.Decision {
	return l.answer("steady-state", c)
}

// writeFragments writes Zincati config fragments into a new directory.
func writeFragments(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestAsksUntilGranted: against the agent's own protocol handler, the
// client takes base_url and group from the fragments (a later one
// overriding an earlier one, as Zincati merges them), asks again after
// each refusal and stops at the grant.
func TestAsksUntilGranted(t *testing.T) {
	l := &locker{refusals: 2}
	srv := httptest.NewServer(fleetlock.Handler(l, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	dir := writeFragments(t, map[string]string{
		"10-base.toml": "[identity]\ngroup = \"workers\"\n",
		"55-etcd-agent-fleet-lock.toml": "[identity]\ngroup = \"etcd\"\n\n[updates]\nstrategy = \"fleet_lock\"\n\n" +
			"[updates.fleet_lock]\nbase_url = \"" + srv.URL + "/\"\n",
	})
	if err := run([]string{"--id", "node-a", "--config-dir", dir, "--interval", "10ms", "pre-reboot"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"pre-reboot node-a etcd", "pre-reboot node-a etcd", "pre-reboot node-a etcd"}
	if strings.Join(l.asked, "|") != strings.Join(want, "|") {
		t.Errorf("asked %q, want %q", l.asked, want)
	}
}

// TestRefusesBadConfig: no fragment, another strategy, or no base_url is
// an error naming what is wrong, before any request.
func TestRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no fragment", nil, "no Zincati config fragment"},
		{"immediate", map[string]string{"55.toml": "[updates]\nstrategy = \"immediate\"\n"}, `updates.strategy is "immediate"`},
		{"no base_url", map[string]string{"55.toml": "[updates]\nstrategy = \"fleet_lock\"\n"}, "base_url is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFragments(t, tc.files)
			err := run([]string{"--id", "node-a", "--config-dir", dir, "steady-state"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
