package metrics

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// alertsDir holds the alert rules shipped for these metrics.
var alertsDir = filepath.Join("..", "..", "docs", "alerts")

// TestAlertRules: promtool checks the shipped rules and runs their unit
// tests (series in, alerts out), and every etcd_agent_ metric they use is
// one this package exports: a renamed metric breaks the test, not the
// on-call's pager.
func TestAlertRules(t *testing.T) {
	rules := filepath.Join(alertsDir, "etcd-agent.rules.yml")
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, f := range families() {
		exported = append(exported, Namespace+"_"+f.name)
	}
	for _, m := range regexp.MustCompile(`\betcd_agent_[a-z_]+`).FindAllString(string(b), -1) {
		if !slices.Contains(exported, m) {
			t.Errorf("%s uses %s, which the agent does not export (exported: %v)", rules, m, exported)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		// As the Podman scenarios do without their setup: CI installs it.
		t.Skipf("promtool is not installed (apt-get install prometheus, as .ci/run does): %v", err)
	}
	for _, args := range [][]string{{"check", "rules", "etcd-agent.rules.yml"}, {"test", "rules", "etcd-agent.rules.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = alertsDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
