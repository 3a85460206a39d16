package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// The metadata items the watcher reads (under meta-data/).
const (
	PathLifecycleState = "autoscaling/target-lifecycle-state"
	PathSpotAction     = "spot/instance-action"
	PathRebalance      = "events/recommendations/rebalance"
	PathScheduled      = "events/maintenance/scheduled"
	PathInstanceID     = "instance-id"
)

// LifecycleTerminated is the target lifecycle state of an instance the
// group is terminating (its terminate hook, if any, is pending).
const LifecycleTerminated = "Terminated"

// MetadataReader reads one metadata item; found is false on a 404 (the
// item does not exist now), which is not an error. identity.Reader is one.
type MetadataReader interface {
	Get(ctx context.Context, path string) (value string, found bool, err error)
}

// Observation is what IMDS said in one round. An item whose read failed
// is in Errors and reads as absent.
type Observation struct {
	// LifecycleState is autoscaling/target-lifecycle-state ("InService",
	// "Terminated", ...); "" when absent.
	LifecycleState string
	// HasLifecycleState: the item exists (the instance is in a group).
	HasLifecycleState bool
	Spot              *SpotAction
	// Rebalance is the notice time of a rebalance recommendation, "" when
	// none.
	Rebalance string
	Scheduled []ScheduledEvent
	// Errors maps an item to why it could not be read (IMDS throttled,
	// unreachable, a body that does not parse).
	Errors map[string]error
}

// SpotAction is spot/instance-action.
type SpotAction struct {
	Action string `json:"action"` // terminate, stop or hibernate
	Time   string `json:"time"`
}

// ScheduledEvent is one entry of events/maintenance/scheduled.
type ScheduledEvent struct {
	Code        string `json:"Code"`
	Description string `json:"Description"`
	State       string `json:"State"`
	EventID     string `json:"EventId"`
	NotBefore   string `json:"NotBefore"`
	NotAfter    string `json:"NotAfter"`
}

// Observe reads every item once. It never fails: a read that does not
// succeed is recorded in Errors and retried next round.
func Observe(ctx context.Context, r MetadataReader) Observation {
	var o Observation
	fail := func(path string, err error) {
		if o.Errors == nil {
			o.Errors = map[string]error{}
		}
		o.Errors[path] = err
	}
	if v, ok, err := r.Get(ctx, PathLifecycleState); err != nil {
		fail(PathLifecycleState, err)
	} else if ok {
		o.LifecycleState, o.HasLifecycleState = v, true
	}
	if v, ok, err := r.Get(ctx, PathSpotAction); err != nil {
		fail(PathSpotAction, err)
	} else if ok {
		var s SpotAction
		if err := json.Unmarshal([]byte(v), &s); err != nil || s.Action == "" {
			fail(PathSpotAction, fmt.Errorf("IMDS returned %q for %s, which is not a spot instance action: %v", short(v), PathSpotAction, err))
		} else {
			o.Spot = &s
		}
	}
	if v, ok, err := r.Get(ctx, PathRebalance); err != nil {
		fail(PathRebalance, err)
	} else if ok {
		var rb struct {
			NoticeTime string `json:"noticeTime"`
		}
		if err := json.Unmarshal([]byte(v), &rb); err != nil {
			fail(PathRebalance, fmt.Errorf("IMDS returned %q for %s, which is not a rebalance recommendation: %w", short(v), PathRebalance, err))
		} else {
			o.Rebalance = rb.NoticeTime
			if o.Rebalance == "" {
				o.Rebalance = "now"
			}
		}
	}
	if v, ok, err := r.Get(ctx, PathScheduled); err != nil {
		fail(PathScheduled, err)
	} else if ok && v != "" {
		if err := json.Unmarshal([]byte(v), &o.Scheduled); err != nil {
			fail(PathScheduled, fmt.Errorf("IMDS returned %q for %s, which is not a list of events: %w", short(v), PathScheduled, err))
		}
	}
	return o
}

func short(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return strings.TrimSpace(s)
}
