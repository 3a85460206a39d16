package runtime

import (
	"errors"
	"testing"
)

func TestEventCause(t *testing.T) {
	inconsistent := errors.New("etcdserver: found data inconsistency with peers")
	for _, tc := range []struct {
		name string
		ev   Event
		want Cause
	}{
		{"exit with etcd's corruption message", Event{Kind: EventExited, Exit: ExitInfo{ExitCode: 1, Err: inconsistent}}, CauseInconsistentData},
		{"start failed with it", Event{Kind: EventEnsureFailed, Err: inconsistent}, CauseInconsistentData},
		{"other exit", Event{Kind: EventExited, Exit: ExitInfo{ExitCode: 137, OOMKilled: true}}, CauseOther},
		{"other start failure", Event{Kind: EventEnsureFailed, Err: errors.New("address already in use")}, CauseOther},
		{"no error", Event{Kind: EventStable}, CauseOther},
	} {
		if got := tc.ev.Cause(); got != tc.want {
			t.Errorf("%s: Cause() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
