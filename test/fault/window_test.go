package fault_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/config"
	"github.com/etcd-agent/etcd-agent/agent/fleetlock"
	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// TestMaintenanceWindowRefusesReboot: a node whose spec has a maintenance
// window that is closed (it opens three days from now) answers its
// Zincati's pre-reboot with the FleetLock refusal outside_maintenance_window
// saying when the next window opens (Zincati asks again later), and
// `etcd-agent status` shows the window and its next opening; steady-state
// is still answered. Writer proof.
func TestMaintenanceWindowRefusesReboot(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	c.useStaticDiscovery(1)
	day := config.WeekdayNames[time.Now().UTC().AddDate(0, 0, 3).Weekday()]
	mw := &config.MaintenanceWindow{Days: []string{day}, StartTime: "00:00", Length: config.Duration(time.Hour)}
	c.configure = func(cfg *config.Config) { cfg.FleetLock.MaintenanceWindow = mw }
	n := c.form(1)
	cli := c.client(1)
	w := lintest.Start(t, cli, 2)

	_, next := fleetlock.WindowOf(mw).At(time.Now())
	ctx := context.Background()
	code, body, err := c.zincati(ctx, 1, fleetlock.PreRebootPath)
	want := "next window opens at " + next.Format(time.RFC3339)
	if err != nil || code != http.StatusConflict || body.Kind != fleetlock.KindOutsideWindow || !strings.HasPrefix(body.Value, want) {
		t.Fatalf("pre-reboot outside the window: %d %+v (%v); want 409 %s %q…\n%s", code, body, err, fleetlock.KindOutsideWindow, want, n[1].describe())
	}
	t.Logf("pre-reboot: %d %s: %s", code, body.Kind, body.Value)
	if code, body, err := c.zincati(ctx, 1, fleetlock.SteadyStatePath); err != nil || code != http.StatusOK {
		t.Errorf("steady-state outside the window: %d %+v (%v), want 200", code, body, err)
	}

	wantLine := "maintenance window " + day + " 00:00 UTC for 1h0m0s: closed, next opens " + next.Format("2006-01-02 15:04")
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, view, table := c.status(1)
		if strings.Contains(table, wantLine) && view.Node.FleetLock != nil && view.Node.FleetLock.WindowChange.Equal(next) {
			t.Logf("status: %s", wantLine)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not show %q:\n%s", wantLine, table)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitAcked(t, w, 50)
	c.proof(w, cli, 1)
}
