package report

import "time"

// Backup is the cluster's snapshot state as this node's agent last read it
// (the record the agents share in the cluster, see agent/backup/schedule),
// plus this agent's own last failure.
type Backup struct {
	// Interval is the configured snapshot interval: a newest snapshot older
	// than twice this is a problem.
	Interval time.Duration `json:"interval"`
	// Slot is the last scheduled slot an agent handled.
	Slot int64 `json:"slot,omitempty"`
	// Last is the newest snapshot taken, by any agent.
	Last *Snapshot `json:"last,omitempty"`
	// Verification is the newest verification of a snapshot.
	Verification *Verification `json:"verification,omitempty"`
	// Verified is the newest verification that succeeded: retention keeps
	// its snapshot whatever failed since.
	Verified *Verification `json:"verified,omitempty"`
	// Failure is the newest failed attempt of any agent, cleared by the
	// next complete success.
	Failure *Failure `json:"failure,omitempty"`
	// LocalError is this agent's own last error reading or writing the
	// record or taking a snapshot ("" once one succeeded).
	LocalError string `json:"local_error,omitempty"`
}

// Snapshot is one snapshot taken.
type Snapshot struct {
	Name     string    `json:"name"`
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"`
	TakenBy  string    `json:"taken_by"`
	Reason   string    `json:"reason,omitempty"`
	// Where lists the stores that hold it (a directory on TakenBy's disk,
	// s3://bucket/prefix).
	Where []string `json:"where"`
	Size  int64    `json:"size"`
}

// Verification is one restore of a snapshot into a throw-away member.
type Verification struct {
	Name  string    `json:"name"`
	At    time.Time `json:"at"`
	By    string    `json:"by"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// Failure is a failed snapshot attempt.
type Failure struct {
	At    time.Time `json:"at"`
	By    string    `json:"by"`
	Error string    `json:"error"`
}
