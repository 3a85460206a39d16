package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
)

// Member is one member of the cluster as a survey saw it: what the member
// list says of it, and what it answered itself.
type Member struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool

	// Endpoint is the client URL that answered ("" when none did).
	Endpoint string
	// Err says why the member did not answer ("" when it did).
	Err string
	// The member's own Status, when it answered.
	Leader       uint64
	RaftTerm     uint64
	RaftIndex    uint64
	AppliedIndex uint64
	// Revision is the keyspace's revision as the member reported it.
	Revision       int64
	DBSize         int64
	DBInUse        int64
	Quota          int64
	Version        string
	StorageVersion string
	// Errors are etcd's own (raised alarms, as text).
	Errors []string
	// DowngradeTarget is the enabled downgrade's target version ("" when
	// none).
	DowngradeTarget string
}

// Answered reports whether the member answered the survey.
func (m Member) Answered() bool { return m.Err == "" }

// Started reports whether the member ever started (a learner added but not
// yet started has no client URL).
func (m Member) Started() bool { return len(m.ClientURLs) > 0 }

// Alarm is a raised etcd alarm.
type Alarm struct {
	MemberID uint64
	Type     pb.AlarmType
}

// Survey is one look at the whole cluster: every member with its own answer,
// the alarms, and (when asked) the members' HashKV compared. Jobs plan on a
// survey and take a new one under the membership lock right before they act.
type Survey struct {
	At        time.Time
	ClusterID uint64
	Members   []Member
	Alarms    []Alarm
	// AlarmsErr is why the alarm list failed (it needs a quorum); Alarms
	// is then empty and proves nothing.
	AlarmsErr error
	// HashKV is the members' HashKV comparison (Options.HashKV).
	HashKV *hashcheck.HashCheck
}

// Options choose what a survey asks beyond the member list and each
// member's status.
type Options struct {
	// Alarms lists the raised alarms (needs a quorum).
	Alarms bool
	// HashKV compares the voters' HashKV at a common revision: every
	// member hashes its whole database, so only the divergence check asks.
	HashKV bool
	// Now is the clock (zero: time.Now).
	Now func() time.Time
}

// Take surveys the cluster cli reaches: the member list (within
// ListTimeout), then every member's Status at its client URLs, in parallel
// (a refused connection fails at once, a frozen member after MemberTimeout).
// Only the member list failing fails the survey.
func Take(ctx context.Context, cli *clientv3.Client, o Options) (Survey, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	lctx, cancel := context.WithTimeout(ctx, ListTimeout)
	list, err := cli.MemberList(lctx)
	cancel()
	if err != nil {
		return Survey{}, fmt.Errorf("member list: %w", err)
	}
	s := Survey{At: now(), ClusterID: list.Header.GetClusterId(), Members: make([]Member, len(list.Members))}
	var wg sync.WaitGroup
	for i, m := range list.Members {
		s.Members[i] = Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
		wg.Go(func() { s.Members[i].ask(ctx, cli) })
	}
	wg.Wait()
	// After the members answered: the alarm list is a raft request, and one
	// in flight while they answer would make a follower look behind.
	if o.Alarms {
		actx, cancel := context.WithTimeout(ctx, ListTimeout)
		resp, err := cli.AlarmList(actx)
		cancel()
		if err != nil {
			s.AlarmsErr = fmt.Errorf("alarm list: %w", err)
		} else {
			for _, al := range resp.Alarms {
				s.Alarms = append(s.Alarms, Alarm{MemberID: al.MemberID, Type: al.Alarm})
			}
		}
	}
	if o.HashKV {
		var eps []string
		for _, m := range s.Members {
			if m.Answered() && !m.IsLearner {
				eps = append(eps, m.Endpoint)
			}
		}
		hc := hashcheck.CompareHashKV(ctx, cli, eps)
		s.HashKV = &hc
	}
	return s, nil
}

// ask fills in the member's own answer.
func (m *Member) ask(ctx context.Context, cli *clientv3.Client) {
	if !m.Started() {
		m.Err = "not started yet (no client URL)"
		return
	}
	m.Err = "no client URL accepts connections"
	for _, u := range m.ClientURLs {
		if !Dialable(ctx, u) {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, MemberTimeout)
		st, err := cli.Status(sctx, u)
		cancel()
		if err != nil {
			m.Err = fmt.Sprintf("no answer within %s: %s", MemberTimeout, ShortErr(err))
			continue
		}
		m.Err, m.Endpoint = "", u
		m.Leader, m.RaftTerm, m.RaftIndex, m.AppliedIndex = st.Leader, st.RaftTerm, st.RaftIndex, st.RaftAppliedIndex
		m.Revision = st.Header.GetRevision()
		m.DBSize, m.DBInUse, m.Quota = st.DbSize, st.DbSizeInUse, st.DbSizeQuota
		m.Version, m.StorageVersion, m.Errors = st.Version, st.StorageVersion, st.Errors
		if st.DowngradeInfo != nil && st.DowngradeInfo.Enabled {
			m.DowngradeTarget = st.DowngradeInfo.TargetVersion
		}
		return
	}
}

// Member returns the member with ID id.
func (s Survey) Member(id uint64) (Member, bool) {
	i := slices.IndexFunc(s.Members, func(m Member) bool { return m.ID == id })
	if i < 0 {
		return Member{}, false
	}
	return s.Members[i], true
}

// ByPeerURL returns the member with peer URL u (this node's, usually).
func (s Survey) ByPeerURL(u string) (Member, bool) {
	i := slices.IndexFunc(s.Members, func(m Member) bool { return slices.Contains(m.PeerURLs, u) })
	if i < 0 {
		return Member{}, false
	}
	return s.Members[i], true
}

// Leader is the leader as the members that answered see it: the member
// that says it leads itself (0 when none does).
func (s Survey) Leader() uint64 {
	for _, m := range s.Members {
		if m.Answered() && m.Leader == m.ID {
			return m.ID
		}
	}
	return 0
}

// Committed is the leader's raft index (0 without a leader that answered).
func (s Survey) Committed() uint64 {
	if m, ok := s.Member(s.Leader()); ok {
		return m.RaftIndex
	}
	return 0
}

// CaughtUp reports whether m has applied everything the leader had
// committed when it answered.
func (s Survey) CaughtUp(m Member) bool {
	c := s.Committed()
	return m.Answered() && c > 0 && m.AppliedIndex >= c
}

// Voters are the members that vote.
func (s Survey) Voters() []Member {
	return slices.DeleteFunc(slices.Clone(s.Members), func(m Member) bool { return m.IsLearner })
}

// ClientURLs are the members' client URLs, sorted, without the member whose
// peer URL is exceptPeerURL ("" keeps all).
func (s Survey) ClientURLs(exceptPeerURL string) []string {
	var eps []string
	for _, m := range s.Members {
		if exceptPeerURL != "" && slices.Contains(m.PeerURLs, exceptPeerURL) {
			continue
		}
		eps = append(eps, m.ClientURLs...)
	}
	slices.Sort(eps)
	return eps
}

// Name is member id's name, or its ID in hex when it has none (a learner
// not yet started).
func (s Survey) Name(id uint64) string {
	if m, ok := s.Member(id); ok && m.Name != "" {
		return m.Name
	}
	return fmt.Sprintf("%x", id)
}

// Raised reports whether an alarm of type t is raised.
func (s Survey) Raised(t pb.AlarmType) bool {
	return slices.ContainsFunc(s.Alarms, func(a Alarm) bool { return a.Type == t })
}
