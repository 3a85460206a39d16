package status

import (
	"fmt"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
)

// maintenanceLine is the "Maint" header line: each member's fragmentation
// as the agent's last round measured it, the cluster's last
// defragmentation and a NOSPACE recovery in progress ("" before the first
// round).
func maintenanceLine(m *report.Maintenance, now time.Time) string {
	if m == nil {
		return ""
	}
	var parts []string
	var frag []string
	for _, ms := range m.Members {
		if ms.Error != "" {
			continue
		}
		frag = append(frag, fmt.Sprintf("%s %.0f%%", ms.Name, 100*ms.Fragmentation))
	}
	if len(frag) > 0 {
		parts = append(parts, "fragmentation "+strings.Join(frag, ", "))
	}
	if d := m.LastDefrag; d != nil {
		last := fmt.Sprintf("last defrag %s %s (%s → %s", d.Member, stamp(d.At, now), humanBytes(d.Before), humanBytes(d.After))
		if d.WasLeader && d.MovedTo != "" {
			last += ", leadership moved to " + d.MovedTo + " first"
		}
		parts = append(parts, last+")")
	} else {
		parts = append(parts, "no defrag yet")
	}
	if m.NoSpace.State != "" && m.NoSpace.State != report.NoSpaceNone {
		parts = append(parts, "NOSPACE "+m.NoSpace.State)
	} else if m.Next != "" {
		parts = append(parts, m.Next)
	}
	return strings.Join(parts, "; ")
}

// changeLine is the "Change" header line: an etcd image or settings change
// and where it stands on this node.
func changeLine(c report.EtcdChange, now time.Time) string {
	line := fmt.Sprintf("%s %s: %s", c.State, stamp(c.Since, now), c.Change)
	if c.Reason != "" {
		line += " (" + c.Reason + ")"
	}
	return line
}

// rebootLine is the "Reboots" header line: who holds a reboot slot
// (FleetLock), its group and since when, and this node's latest answer to
// its Zincati ("" when FleetLock is not served).
func rebootLine(f *report.FleetLock, now time.Time) string {
	if f == nil {
		return ""
	}
	var parts []string
	switch {
	case f.Error != "" && f.ReadAt.IsZero():
		parts = append(parts, "slots unknown ("+f.Error+")")
	case f.ReadAt.IsZero():
		parts = append(parts, "slots not read yet")
	case len(f.Holders) == 0:
		parts = append(parts, "no reboot slot held")
	default:
		for _, h := range f.Holders {
			parts = append(parts, fmt.Sprintf("slot held by %s (%s, group %s) since %s (%s)", h.ID, h.Member, h.Group, stamp(h.Since, now), age(now.Sub(h.Since))))
		}
	}
	if f.Window != "" {
		state := fmt.Sprintf("closed, next opens %s (in %s)", stamp(f.WindowChange, now), age(f.WindowChange.Sub(now)))
		if f.WindowOpen {
			state = fmt.Sprintf("open until %s", stamp(f.WindowChange, now))
		}
		parts = append(parts, "maintenance window "+f.Window+": "+state)
	}
	if a := f.LastAnswer; a != nil {
		verdict := "granted"
		if !a.Granted {
			verdict = "refused (" + a.Kind + ")"
		}
		parts = append(parts, fmt.Sprintf("last %s %s %s", a.Operation, verdict, stamp(a.At, now)))
	}
	return strings.Join(parts, "; ") + "; FleetLock on " + f.Address
}
