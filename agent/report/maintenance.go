package report

import "time"

// MaxDefrags is how many defragmentations a report keeps.
const MaxDefrags = 10

// NoSpace states.
const (
	// NoSpaceNone: no NOSPACE alarm is raised.
	NoSpaceNone = "none"
	// NoSpaceRecovering: the alarm is raised and the agents compact,
	// defragment and will disarm it (Message says which step or what it
	// waits for).
	NoSpaceRecovering = "recovering"
	// NoSpaceKept: the alarm stays: the live data does not fit the quota.
	// Message says so, with the sizes and what to do.
	NoSpaceKept = "kept"
)

// Maintenance is the agent's defragmentation and NOSPACE handling, as of its
// latest round (agent/maintenance).
type Maintenance struct {
	CheckedAt time.Time `json:"checked_at"`
	// Coordinator: this node's member leads, so this agent is the one that
	// defragments and recovers; the others watch.
	Coordinator bool `json:"coordinator"`
	// Members is every member's database as last seen.
	Members []MemberSpace `json:"members,omitempty"`
	// Next is the round's decision: what is being done or waited for (""
	// when nothing is due).
	Next string `json:"next,omitempty"`
	// LastDefrag is the cluster's most recent defragmentation, by any agent
	// (read from the cluster).
	LastDefrag *Defrag `json:"last_defrag,omitempty"`
	// Defrags are the ones this agent ran, newest last (MaxDefrags).
	Defrags []Defrag `json:"defrags,omitempty"`
	NoSpace NoSpace  `json:"nospace"`
}

// MemberSpace is one member's database.
type MemberSpace struct {
	Name     string `json:"name"`
	ID       string `json:"id"` // hex, as etcdctl prints it
	Endpoint string `json:"endpoint"`
	Leader   bool   `json:"leader,omitempty"`
	// DBSize is the database file, DBSizeInUse the part holding data;
	// Fragmentation the unused fraction of the file (0..1).
	DBSize        int64   `json:"db_size"`
	DBSizeInUse   int64   `json:"db_size_in_use"`
	Fragmentation float64 `json:"fragmentation"`
	Quota         int64   `json:"quota,omitempty"`
	// Error is why the member did not answer ("" when it did).
	Error string `json:"error,omitempty"`
}

// Defrag is one defragmentation of one member.
type Defrag struct {
	Member string    `json:"member"`
	At     time.Time `json:"at"` // when it ended
	// By is the member name of the agent that ran it.
	By string `json:"by,omitempty"`
	// WasLeader: the member led; leadership was moved to MovedTo first.
	WasLeader bool   `json:"was_leader,omitempty"`
	MovedTo   string `json:"moved_to,omitempty"`
	// NoSpace: part of a NOSPACE recovery.
	NoSpace bool   `json:"nospace,omitempty"`
	Reason  string `json:"reason"`
	// Before and After are the database file sizes.
	Before      int64   `json:"before"`
	After       int64   `json:"after,omitempty"`
	TookSeconds float64 `json:"took_seconds"`
	Error       string  `json:"error,omitempty"`
}

// NoSpace is the NOSPACE handling state.
type NoSpace struct {
	// State is NoSpaceNone, NoSpaceRecovering or NoSpaceKept.
	State string `json:"state"`
	// Since is when the alarm was first seen raised (zero with none).
	Since time.Time `json:"since,omitzero"`
	// Message is the step or wait, or for NoSpaceKept the exact reason
	// and what to do.
	Message string `json:"message,omitempty"`
	// LastDisarmed is when this agent last disarmed the alarm.
	LastDisarmed time.Time `json:"last_disarmed,omitzero"`
}

func (m *Maintenance) clone() *Maintenance {
	if m == nil {
		return nil
	}
	c := *m
	c.Members = cloneSlice(m.Members)
	c.Defrags = cloneSlice(m.Defrags)
	if m.LastDefrag != nil {
		d := *m.LastDefrag
		c.LastDefrag = &d
	}
	return &c
}
