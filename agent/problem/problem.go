// Package problem declares what can be wrong with a node or its cluster as
// data: a Kind (stable code, severity, title, default fix) makes Problems
// (one occurrence, about one subject, in plain words). `etcd-agent status`,
// the agent's STATUS= line and its Prometheus metrics all show the same
// values, so a problem is named once and reads the same everywhere.
//
// Modelled on tailscale's health.Warnable, without its global registry: a
// Kind is a plain value, declared next to the code that detects it (or in
// this package's catalog.go) and listed in Known so metrics can show it at
// zero before it first happens.
package problem

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Code names a kind of problem. It is stable: scripts, alerts and
// dashboards match on it. Lower case words joined by dashes.
type Code string

// Severity says how much a problem matters.
type Severity string

// Severities, most severe first.
const (
	// Critical: the cluster refuses writes or reads, or data is at risk
	// (no leader, quorum lost, NOSPACE or CORRUPT alarm, replicas diverged).
	Critical Severity = "critical"
	// Warning: the cluster serves, but with less redundancy or with
	// something that needs a human soon (a member down, renewal failing).
	Warning Severity = "warning"
	// Info: worth showing, expected to resolve by itself (a defrag or a
	// rolling change in progress). It does not fail `status`'s exit code.
	Info Severity = "info"
)

// Severities lists every severity, most severe first.
func Severities() []Severity { return []Severity{Critical, Warning, Info} }

// rank orders severities: higher is worse; unknown ones count as warnings.
func (s Severity) rank() int {
	switch s {
	case Critical:
		return 3
	case Info:
		return 1
	}
	return 2
}

// AtLeast reports whether s is as severe as other or more.
func (s Severity) AtLeast(other Severity) bool { return s.rank() >= other.rank() }

// Kind declares one sort of problem. Declare it once as a package-level
// value and make Problems with New/Newf.
type Kind struct {
	Code     Code
	Severity Severity
	// Title is a short name for dashboards and the STATUS= line
	// ("database space exceeded").
	Title string
	// Fix is the default advice: what the operator should do, or what the
	// agent is doing about it. A Problem may carry a more specific one.
	Fix string
	// VisibleAfter is how long the agent must keep finding the problem
	// before it publishes it, so a brief blip does not flap the STATUS=
	// line and the metrics (tailscale's TimeToVisible). Zero: at once.
	VisibleAfter time.Duration
}

// Problem is one occurrence of a Kind. Its JSON form is part of
// `etcd-agent status -o json` and of the agent's report.
type Problem struct {
	Code     Code     `json:"code"`
	Severity Severity `json:"severity"`
	// Title is the kind's short name ("database space exceeded").
	Title string `json:"title"`
	// Subject is what it is about: a member name, an endpoint, a
	// certificate role; "" for the cluster or the node as a whole.
	Subject string `json:"subject,omitempty"`
	// Text says what is wrong, in one line of plain words.
	Text string `json:"text"`
	// Fix says what to do about it ("" when nothing needs doing).
	Fix string `json:"fix,omitempty"`
	// Since is when the agent first found it (zero for what `status`
	// found itself, which is a point in time).
	Since time.Time `json:"since,omitzero"`

	// visibleAfter is the kind's VisibleAfter (report.Recorder applies it).
	visibleAfter time.Duration
}

// VisibleAfter is how long p must persist before the agent publishes it.
func (p Problem) VisibleAfter() time.Duration { return p.visibleAfter }

// Runbook is where docs/runbook.md says what to do about problems of
// this kind (alerts and `status` point there).
func (k Kind) Runbook() string { return k.Code.Runbook() }

// Runbook is the runbook section of code.
func (c Code) Runbook() string { return "docs/runbook.md#" + string(c) }

// New is a problem of kind k about subject, with text as its description.
func (k Kind) New(subject, text string) Problem {
	return Problem{Code: k.Code, Severity: k.Severity, Title: k.Title, Subject: subject, Text: text, Fix: k.Fix, visibleAfter: k.VisibleAfter}
}

// Newf is New with a formatted text.
func (k Kind) Newf(subject, format string, args ...any) Problem {
	return k.New(subject, fmt.Sprintf(format, args...))
}

// WithFix returns p with a more specific fix.
func (p Problem) WithFix(fix string) Problem {
	p.Fix = fix
	return p
}

// String is the problem as one line: "text (fix)".
func (p Problem) String() string {
	if p.Fix == "" {
		return p.Text
	}
	return p.Text + " — " + p.Fix
}

// Sort orders problems most severe first, then by code and subject, so a
// list reads the same on every run.
func Sort(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(b.Severity.rank(), a.Severity.rank()), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Subject, b.Subject))
	})
}

// Worst is the highest severity among ps, "" when ps is empty.
func Worst(ps []Problem) Severity {
	var w Severity
	for _, p := range ps {
		if w == "" || p.Severity.rank() > w.rank() {
			w = p.Severity
		}
	}
	return w
}

// Failing reports whether any problem is a warning or worse: what makes
// `status` exit non-zero. Info problems do not.
func Failing(ps []Problem) bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return p.Severity.AtLeast(Warning) })
}

// Merge appends the problems of more that ps lacks (same code and
// subject), so the agent's view and `status`'s own do not repeat.
func Merge(ps []Problem, more ...Problem) []Problem {
	for _, p := range more {
		if !slices.ContainsFunc(ps, func(q Problem) bool { return q.Code == p.Code && q.Subject == p.Subject }) {
			ps = append(ps, p)
		}
	}
	return ps
}

// Count tallies problems by code and by severity.
func Count(ps []Problem) (byCode map[Code]int, bySeverity map[Severity]int) {
	byCode, bySeverity = map[Code]int{}, map[Severity]int{}
	for _, p := range ps {
		byCode[p.Code]++
		bySeverity[p.Severity]++
	}
	return byCode, bySeverity
}

// Line is the problems as a short clause for a one-line status (the
// STATUS= line): the worst one's text, and how many more. "" when none.
func Line(ps []Problem) string {
	if len(ps) == 0 {
		return ""
	}
	sorted := slices.Clone(ps)
	Sort(sorted)
	line := sorted[0].Text
	if n := len(sorted) - 1; n == 1 {
		line += " (+1 more problem)"
	} else if n > 1 {
		line += fmt.Sprintf(" (+%d more problems)", n)
	}
	return strings.TrimSpace(line)
}
