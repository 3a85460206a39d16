package report

import "time"

// FleetLock is the reboot slots (agent/fleetlock) as this agent last read
// them from the cluster, and its latest answer to its node's Zincati.
type FleetLock struct {
	// Address is where the agent serves the FleetLock protocol.
	Address string `json:"address"`
	// Holders are every group's slot holders (none: nobody reboots).
	Holders []FleetLockHolder `json:"holders"`
	// ReadAt is when the slots were read; Error why they could not be
	// ("" when they were).
	ReadAt time.Time `json:"read_at,omitzero"`
	Error  string    `json:"error,omitempty"`
	// LastAnswer is this agent's latest answer to a FleetLock request.
	LastAnswer *FleetLockAnswer `json:"last_answer,omitempty"`
	// Window is the maintenance window reboots may start in
	// (fleetLock.maintenanceWindow; "" when none). WindowOpen says whether
	// it was open when last looked at, and WindowChange when it then
	// closes (open) or next opens (closed).
	Window       string    `json:"window,omitempty"`
	WindowOpen   bool      `json:"window_open,omitempty"`
	WindowChange time.Time `json:"window_change,omitzero"`
}

// FleetLockHolder is one held reboot slot.
type FleetLockHolder struct {
	ID     string    `json:"id"`
	Group  string    `json:"group"`
	Slot   int       `json:"slot"`
	Member string    `json:"member"`
	Since  time.Time `json:"since"`
}

// FleetLockAnswer is one answer to Zincati.
type FleetLockAnswer struct {
	At        time.Time `json:"at"`
	Operation string    `json:"operation"` // pre-reboot or steady-state
	ID        string    `json:"id"`
	Group     string    `json:"group"`
	Granted   bool      `json:"granted"`
	Kind      string    `json:"kind,omitempty"`
	Reason    string    `json:"reason"`
}

func (f *FleetLock) clone() *FleetLock {
	if f == nil {
		return nil
	}
	c := *f
	c.Holders = cloneSlice(f.Holders)
	if f.LastAnswer != nil {
		a := *f.LastAnswer
		c.LastAnswer = &a
	}
	return &c
}
