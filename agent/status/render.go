package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/etcd-agent/etcd-agent/agent/problem"
)

// Output formats accepted by Render.
const (
	FormatTable = "table"
	FormatJSON  = "json"
)

// Render writes v to w as FormatTable (also for "") or FormatJSON.
func Render(w io.Writer, v View, format string) error {
	switch format {
	case "", FormatTable:
		return renderTable(w, v)
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("write status JSON: %w", err)
		}
		return nil
	default:
		return fmt.Errorf("render status: unknown format %q (want %s or %s)", format, FormatTable, FormatJSON)
	}
}

// renderTable prints one screen: this node's header, the member table, the
// verdict and its problems.
func renderTable(w io.Writer, v View) error {
	var b strings.Builder
	for _, l := range headerLines(v) {
		fmt.Fprintf(&b, "%-9s%s\n", l[0], l[1])
	}
	b.WriteString("\n")

	if v.Summary.NotAsked == "" {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		header, rows := memberTable(v)
		fmt.Fprintln(tw, strings.Join(header, "\t"))
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write status table: %w", err)
		}
	}

	if v.Summary.NotAsked != "" {
		fmt.Fprintf(&b, "%-9s%s\n", "Cluster", "not asked: "+v.Summary.NotAsked)
	} else {
		fmt.Fprintf(&b, "\n%-9s%s\n", "Cluster", verdict(v.Summary))
		fmt.Fprintf(&b, "%-9s%s\n", "Data", v.HashKV.Description)
	}
	if len(v.Summary.Problems) > 0 {
		b.WriteString("Problems:\n")
		for _, p := range v.Summary.Problems {
			since := ""
			if !p.Since.IsZero() {
				since = " (since " + stamp(p.Since, v.CheckedAt) + ")"
			}
			fmt.Fprintf(&b, "  - [%s] %s%s\n", p.Severity, p.Text, since)
			if p.Fix != "" {
				fmt.Fprintf(&b, "      fix: %s\n", p.Fix)
			}
			fmt.Fprintf(&b, "      runbook: %s\n", p.Code.Runbook())
		}
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write status table: %w", err)
	}
	return nil
}

// headerLines are the node lines above the table, as label/text pairs.
func headerLines(v View) [][2]string {
	n := v.Node
	var out [][2]string
	add := func(label, text string) { out = append(out, [2]string{label, text}) }

	id := orDash(n.Name)
	if extra := joinNonEmpty(", ", n.PrivateIP, n.Hostname, n.InstanceID, n.Zone); extra != "" {
		id += " (" + extra + ")"
	}
	add("Node", id)
	add("Agent", agentLine(n, v))
	if len(n.Certs) > 0 {
		parts := make([]string, len(n.Certs))
		for i, c := range n.Certs {
			when := fmt.Sprintf("%s (%dd)", c.NotAfter.Format("2006-01-02"), c.DaysLeft)
			if i == 0 {
				parts[i] = fmt.Sprintf("%s cert expires %s", c.Role, when)
			} else {
				parts[i] = c.Role + " " + when
			}
		}
		line := strings.Join(parts, ", ")
		if is := n.Certs[0].Issuer; is != "" {
			line += "; issued by " + is
		}
		add("Certs", line)
	}
	if n.Backup != nil {
		add("Backup", backupLine(n.Backup, v.CheckedAt))
	}
	if line := maintenanceLine(n.Maintenance, v.CheckedAt); line != "" {
		add("Maint", line)
	}
	if c := n.EtcdChange; c.State != "" {
		add("Change", changeLine(c, v.CheckedAt))
	}
	if line := rebootLine(n.FleetLock, v.CheckedAt); line != "" {
		add("Reboots", line)
	}
	if n.LastError != "" {
		add("Error", n.LastError)
	}
	if len(n.Transitions) > 0 {
		parts := make([]string, len(n.Transitions))
		for i, t := range n.Transitions {
			parts[i] = string(t.Phase) + " " + stamp(t.At, v.CheckedAt)
		}
		add("History", strings.Join(parts, " → "))
	}
	for i, d := range lastN(n.Decisions, 3) {
		label := ""
		if i == 0 {
			label = "Decided"
		}
		add(label, fmt.Sprintf("%s %s: %s", stamp(d.At, v.CheckedAt), d.Action, d.Reason))
	}
	return out
}

func agentLine(n Node, v View) string {
	if n.ReportError != "" {
		return "NOT RUNNING: " + n.ReportError
	}
	state := string(n.Phase)
	if n.Ready {
		state += ", ready"
	} else {
		state += ", not ready"
	}
	if n.Message != "" {
		state += ": " + n.Message
	}
	meta := joinNonEmpty(", ", n.AgentVersion, "report "+age(v.CheckedAt.Sub(n.UpdatedAt))+" old")
	if !n.AgentAlive {
		return fmt.Sprintf("NOT RUNNING: %s; last state %s (%s)", n.AgentState, state, meta)
	}
	return fmt.Sprintf("%s (pid %d, %s)", state, n.AgentPID, meta)
}

// memberTable is the header and rows of the table: one row per endpoint,
// plus one for each member no endpoint stands for (not started yet).
func memberTable(v View) ([]string, [][]string) {
	header := []string{"NAME", "ENDPOINT", "ID", "ROLE", "HEALTH", "TERM", "INDEX", "DB", "HASHKV", "VERSION", "ALARMS"}
	var rows [][]string
	for _, e := range v.Endpoints {
		rows = append(rows, []string{
			orDash(e.Name), e.Endpoint, orDash(e.MemberID), orDash(e.Role), healthCell(e),
			num(e.RaftTerm), num(e.RaftIndex), dbCell(e), orDash(e.HashKV), orDash(e.Version), orDash(strings.Join(e.Alarms, ",")),
		})
	}
	for _, m := range v.Members {
		covered := false
		for _, e := range v.Endpoints {
			covered = covered || e.MemberID == m.ID
		}
		if !covered {
			role := "voter"
			if m.IsLearner {
				role = "learner"
			}
			health := "not asked"
			if len(m.ClientURLs) == 0 {
				health = "not started"
			}
			rows = append(rows, []string{displayName(m), "-", m.ID, role, health, "-", "-", "-", "-", "-", "-"})
		}
	}
	return header, rows
}

// verdict is the one-line cluster summary under the table, naming the
// worst cluster problem when there is one.
func verdict(s Summary) string {
	state := "UNHEALTHY"
	if s.Healthy {
		state = "healthy"
	}
	leader := "no leader"
	if s.HasLeader {
		leader = "leader " + s.Leader
	}
	line := fmt.Sprintf("%s: %s, %d/%d members healthy (%d voters, %d learners)",
		state, leader, s.HealthyMembers, s.Members, s.Voters, s.Learners)
	switch {
	case !s.Healthy && len(s.Problems) > 0 && s.Problems[0].Severity == problem.Critical:
		line += "; " + s.Problems[0].Title
	case s.Size > 0 && s.Voters < s.Size && s.Members > 0:
		line += fmt.Sprintf("; under-replicated: %d of %d voters", s.Voters, s.Size)
	}
	return line
}
