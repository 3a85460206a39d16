package maintenance

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
)

func TestSurveyFacts(t *testing.T) {
	const selfPeer = "https://10.0.1.5:2380"
	// answered is a member that answered the survey: led by 1, at revision 42.
	answered := func(id uint64, name, host string) cluster.Member {
		return cluster.Member{ID: id, Name: name, PeerURLs: []string{"https://" + host + ":2380"},
			ClientURLs: []string{"https://" + host + ":2379"}, Endpoint: "https://" + host + ":2379",
			Leader: 1, RaftIndex: 500, AppliedIndex: 490, Revision: 42, DBSize: 40 * mib, DBInUse: 4 * mib, Quota: 64 * mib}
	}
	self := answered(1, "etcd-a", "10.0.1.5")
	other := answered(2, "etcd-b", "10.0.1.6")
	// The maintenance view of self and other.
	selfM := Member{ID: 1, Name: "etcd-a", Endpoint: "https://10.0.1.5:2379", Leader: 1, RaftIndex: 500, AppliedIndex: 490,
		DBSize: 40 * mib, DBInUse: 4 * mib, Quota: 64 * mib}
	otherM := selfM
	otherM.ID, otherM.Name, otherM.Endpoint = 2, "etcd-b", "https://10.0.1.6:2379"

	cases := []struct {
		name string
		s    cluster.Survey
		want Facts
		// err holds these words ("" when none is expected).
		err string
	}{
		{name: "every member answered",
			s:    cluster.Survey{At: t0, Members: []cluster.Member{self, other}},
			want: Facts{Now: t0, Self: 1, Leader: 1, Revision: 42, Members: []Member{selfM, otherM}}},
		{name: "alarms go to their member, by type name",
			s: cluster.Survey{At: t0, Members: []cluster.Member{self, other}, Alarms: []cluster.Alarm{
				{MemberID: 2, Type: pb.AlarmType_NOSPACE}, {MemberID: 2, Type: pb.AlarmType_CORRUPT}}},
			want: Facts{Now: t0, Self: 1, Leader: 1, Revision: 42, Members: []Member{selfM,
				with2(otherM, func(m *Member) { m.Alarms = []string{AlarmNoSpace, AlarmCorrupt} })}}},
		{name: "the local member is found by its peer URL, the leader is as it sees it",
			s: cluster.Survey{At: t0, Members: []cluster.Member{
				withSurveyed(self, func(m *cluster.Member) { m.Leader = 2 }),
				withSurveyed(other, func(m *cluster.Member) { m.Leader, m.Revision = 2, 43 })}},
			want: Facts{Now: t0, Self: 1, Leader: 2, Revision: 42, Members: []Member{
				with2(selfM, func(m *Member) { m.Leader = 2 }), with2(otherM, func(m *Member) { m.Leader = 2 })}}},
		{name: "a silent member keeps its first client URL and its error, nothing else",
			s: cluster.Survey{At: t0, Members: []cluster.Member{self, withSurveyed(other, func(m *cluster.Member) {
				m.Endpoint, m.Err = "", "no answer within 2s: context deadline exceeded"
			})}},
			want: Facts{Now: t0, Self: 1, Leader: 1, Revision: 42, Members: []Member{selfM,
				{ID: 2, Name: "etcd-b", Endpoint: "https://10.0.1.6:2379", Err: "no answer within 2s: context deadline exceeded"}}}},
		{name: "a learner not started yet has no endpoint",
			s: cluster.Survey{At: t0, Members: []cluster.Member{self,
				{ID: 3, PeerURLs: []string{"https://10.0.1.7:2380"}, IsLearner: true, Err: "not started yet (no client URL)"}}},
			want: Facts{Now: t0, Self: 1, Leader: 1, Revision: 42, Members: []Member{selfM,
				{ID: 3, Learner: true, Err: "not started yet (no client URL)"}}}},
		{name: "the alarm list failed: no facts",
			s:   cluster.Survey{At: t0, Members: []cluster.Member{self, other}, AlarmsErr: errors.New("alarm list: etcdserver: request timed out")},
			err: "alarm list: etcdserver: request timed out"},
		{name: "the local member did not answer",
			s: cluster.Survey{At: t0, Members: []cluster.Member{withSurveyed(self, func(m *cluster.Member) {
				m.Endpoint, m.Err = "", "no client URL accepts connections"
			}), other}},
			err: "local member status: no client URL accepts connections"},
		{name: "the local member is not in the member list",
			s:   cluster.Survey{At: t0, Members: []cluster.Member{other}},
			err: "no member with peer URL " + selfPeer},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := surveyFacts(c.s, selfPeer)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one holding %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("facts\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func withSurveyed(m cluster.Member, edit func(*cluster.Member)) cluster.Member { edit(&m); return m }
