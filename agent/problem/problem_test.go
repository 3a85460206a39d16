package problem_test

import (
	"regexp"
	"testing"

	"github.com/etcd-agent/etcd-agent/agent/problem"
)

func TestKnownKindsAreWellFormed(t *testing.T) {
	code := regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	seen := map[problem.Code]bool{}
	for _, k := range problem.Known() {
		if !code.MatchString(string(k.Code)) {
			t.Errorf("code %q: want lower-case words joined by dashes", k.Code)
		}
		if seen[k.Code] {
			t.Errorf("code %q declared twice", k.Code)
		}
		seen[k.Code] = true
		switch k.Severity {
		case problem.Critical, problem.Warning, problem.Info:
		default:
			t.Errorf("%s: severity %q", k.Code, k.Severity)
		}
		if k.Title == "" || k.Fix == "" {
			t.Errorf("%s: needs a title and a fix", k.Code)
		}
	}
}

func TestOrderingAndSummaries(t *testing.T) {
	info := problem.Kind{Code: "defrag-running", Severity: problem.Info, Title: "defragmenting"}
	ps := []problem.Problem{
		info.New("etcd-a", "defragmenting etcd-a"),
		problem.MemberUnhealthy.New("etcd-b", "etcd-b does not answer"),
		problem.AlarmNoSpace.New("", "database full"),
		problem.MemberUnhealthy.New("etcd-a", "etcd-a does not answer"),
	}
	problem.Sort(ps)
	var order []string
	for _, p := range ps {
		order = append(order, string(p.Code)+"/"+p.Subject)
	}
	want := []string{"alarm-nospace/", "member-unhealthy/etcd-a", "member-unhealthy/etcd-b", "defrag-running/etcd-a"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order = %q, want %q", order, want)
		}
	}
	if w := problem.Worst(ps); w != problem.Critical {
		t.Errorf("Worst = %q", w)
	}
	if problem.Worst(nil) != "" || problem.Failing(nil) {
		t.Error("no problems: want no severity and not failing")
	}
	if problem.Failing([]problem.Problem{info.New("", "x")}) {
		t.Error("an info problem alone must not fail status")
	}
	if got := problem.Line(ps); got != "database full (+3 more problems)" {
		t.Errorf("Line = %q", got)
	}
	byCode, bySev := problem.Count(ps)
	if byCode["member-unhealthy"] != 2 || bySev[problem.Critical] != 1 || bySev[problem.Info] != 1 {
		t.Errorf("Count = %v, %v", byCode, bySev)
	}
	merged := problem.Merge(ps[:2], problem.AlarmNoSpace.New("", "again"), problem.CertExpiring.New("server", "soon"))
	if len(merged) != 3 || merged[2].Code != "cert-expiring" {
		t.Errorf("Merge = %+v: want the duplicate dropped and the new one kept", merged)
	}
	if p := problem.AlarmNoSpace.New("", "full").WithFix("delete keys"); p.String() != "full — delete keys" {
		t.Errorf("String = %q", p.String())
	}
}
