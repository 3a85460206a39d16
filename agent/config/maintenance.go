package config

import (
	"fmt"
	"strconv"
	"time"
)

// Maintenance configures the agents' defragmentation and NOSPACE recovery
// (agent/maintenance: Plan decides, its Job acts).
type Maintenance struct {
	// Interval is how often each agent looks at the members' database
	// sizes and alarms. Zero: 10s. At least 500ms.
	Interval Duration `yaml:"interval,omitempty"`
	// DefragFreeRatio and DefragFreeBytes: a member is defragmented when
	// the unused part of its database file is at least this fraction of the
	// file AND at least this many bytes. Zero: 0.5 and 100MiB.
	DefragFreeRatio float64 `yaml:"defragFreeRatio,omitempty"`
	DefragFreeBytes Size    `yaml:"defragFreeBytes,omitempty"`
	// DefragPace is the pause between two members' defragmentations,
	// cluster-wide (a defragmenting member stalls its clients for the
	// duration). Zero: 1m. NOSPACE recovery does not wait for it.
	DefragPace Duration `yaml:"defragPace,omitempty"`
	// DisarmBelow: a NOSPACE alarm is disarmed once every member's
	// database file is below this fraction of etcd.quotaBackendBytes, so
	// the next write does not raise it again. Zero: 0.9.
	DisarmBelow float64 `yaml:"disarmBelow,omitempty"`
}

// Maintenance defaults; see the field comments.
const (
	DefaultMaintenanceInterval = 10 * time.Second
	MinMaintenanceInterval     = 500 * time.Millisecond
	DefaultDefragFreeRatio     = 0.5
	DefaultDefragFreeBytes     = 100 << 20
	DefaultDefragPace          = time.Minute
	DefaultDisarmBelow         = 0.9
)

func (m *Maintenance) applyDefaults() {
	if m.Interval == 0 {
		m.Interval = Duration(DefaultMaintenanceInterval)
	}
	if m.DefragFreeRatio == 0 {
		m.DefragFreeRatio = DefaultDefragFreeRatio
	}
	if m.DefragFreeBytes == 0 {
		m.DefragFreeBytes = DefaultDefragFreeBytes
	}
	if m.DefragPace == 0 {
		m.DefragPace = Duration(DefaultDefragPace)
	}
	if m.DisarmBelow == 0 {
		m.DisarmBelow = DefaultDisarmBelow
	}
}

func (m *Maintenance) validate(bad func(field, value, problem, fix string)) {
	ratio := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	if m.Interval.D() < MinMaintenanceInterval {
		bad("maintenance.interval", m.Interval.String(), fmt.Sprintf("is shorter than %s", MinMaintenanceInterval), "use 10s (the default) or more")
	}
	if r := m.DefragFreeRatio; r < 0 || r > 1 {
		bad("maintenance.defragFreeRatio", ratio(r), "must be a fraction between 0 and 1 of the database file", "use 0.5 (defragment when half the file is unused)")
	}
	if m.DefragFreeBytes < 0 {
		bad("maintenance.defragFreeBytes", fmt.Sprint(int64(m.DefragFreeBytes)), "is negative", "use a size like 100MiB")
	}
	if d := m.DisarmBelow; d <= 0 || d >= 1 {
		bad("maintenance.disarmBelow", ratio(d), "must be a fraction of etcd.quotaBackendBytes between 0 and 1 (exclusive)",
			"use 0.9: disarm NOSPACE once every database is below 90% of the quota")
	}
}
