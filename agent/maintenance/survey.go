package maintenance

import (
	"fmt"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
)

// surveyFacts is what a cluster survey tells Plan: the members with their
// alarms and database sizes, and the local member (found by its peer URL
// selfPeer) with the leader and the revision it reports. The rest of Facts
// (clock, policy, compaction, pacing) is the job's to fill in. It fails when
// the alarm list failed (no alarm would prove no NOSPACE) or the local member
// did not answer.
func surveyFacts(s cluster.Survey, selfPeer string) (Facts, error) {
	f := Facts{Now: s.At}
	if s.AlarmsErr != nil {
		return f, s.AlarmsErr
	}
	self, ok := s.ByPeerURL(selfPeer)
	if !ok {
		return f, fmt.Errorf("local member status: no member with peer URL %s", selfPeer)
	}
	if !self.Answered() {
		return f, fmt.Errorf("local member status: %s", self.Err)
	}
	f.Self, f.Leader, f.Revision = self.ID, self.Leader, self.Revision
	f.Members = make([]Member, len(s.Members))
	for i, m := range s.Members {
		mm := Member{ID: m.ID, Name: m.Name, Learner: m.IsLearner, Endpoint: m.Endpoint, Err: m.Err}
		if mm.Endpoint == "" && m.Started() {
			// Silent: its first client URL still says where it is.
			mm.Endpoint = m.ClientURLs[0]
		}
		for _, al := range s.Alarms {
			if al.MemberID == m.ID {
				mm.Alarms = append(mm.Alarms, al.Type.String())
			}
		}
		if m.Answered() {
			mm.Leader, mm.RaftIndex, mm.AppliedIndex = m.Leader, m.RaftIndex, m.AppliedIndex
			mm.DBSize, mm.DBInUse, mm.Quota = m.DBSize, m.DBInUse, m.Quota
		}
		f.Members[i] = mm
	}
	return f, nil
}
