package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// probeTimeout bounds one health probe; a member that cannot answer within
// it is not healthy.
const probeTimeout = 5 * time.Second

// health is one observation of the local member.
type health struct {
	ready     bool
	learner   bool   // the local member is a learner: promote it
	selfID    uint64 // the local member's ID, when it is in the member list
	clusterID uint64
	leader    bool // the local member is the leader
	phase     report.Phase
	message   string
	endpoints []string
	// problems are what this observation found wrong, as data (the
	// report's "health" problems).
	problems []problem.Problem
}

// probe asks the local member, over TLS with the agent's client cert, whether
// it is healthy, a voter and caught up. A linearizable read succeeding on the
// local member proves it has applied everything the leader had committed when
// the read started, which is what "caught up" must mean for READY.
func (a *Agent) probe(ctx context.Context) health {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	degraded := func(format string, args ...any) health {
		msg := fmt.Sprintf(format, args...)
		text := strings.TrimPrefix(msg, "degraded: ")
		if !strings.HasPrefix(text, "local member") {
			text = "local member " + a.spec.Name + ": " + text
		}
		return health{phase: report.PhaseDegraded, message: msg, problems: []problem.Problem{problem.LocalMemberUnhealthy.New(a.spec.Name, text)}}
	}
	members, err := a.client.MemberList(ctx)
	if err != nil && strings.Contains(err.Error(), rpctypes.ErrorDesc(rpctypes.ErrGRPCNotSupportedForLearner)) {
		// A learner serves no member list: ask the other members.
		if cli, cerr := a.clusterClient(); cerr == nil {
			members, err = cli.MemberList(ctx)
		}
	}
	if err != nil {
		return degraded("degraded: member list failed: %v", shortErr(err))
	}
	var endpoints []string
	var self *etcdserverpb.Member
	voters := 0
	for _, m := range members.Members {
		endpoints = append(endpoints, m.ClientURLs...)
		if !m.IsLearner {
			voters++
		}
		if m.Name == a.spec.Name {
			self = m
		}
	}
	st, err := a.client.Status(ctx, a.spec.ClientURL())
	if err != nil {
		return degraded("degraded: local member status failed: %v", shortErr(err))
	}
	if self == nil {
		h := degraded("local member %s not in the member list (%d members)", a.spec.Name, len(members.Members))
		h.endpoints = endpoints
		return h
	}
	if self.IsLearner {
		return health{phase: report.PhaseLearner, endpoints: endpoints, learner: true, selfID: self.ID,
			message: fmt.Sprintf("learner, catching up (raft index %d)", st.RaftIndex)}
	}
	if st.Leader == 0 {
		h := degraded("degraded: no leader (quorum lost?), %d members", len(members.Members))
		h.problems = []problem.Problem{problem.NoLeader.Newf("", "local member %s knows no leader: the cluster has lost quorum or is electing one", a.spec.Name)}
		h.endpoints = endpoints
		return h
	}
	if _, err := a.client.Get(ctx, "health"); err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		h := degraded("degraded: linearizable read failed: %v", shortErr(err))
		h.endpoints = endpoints
		return h
	}
	if len(st.Errors) > 0 {
		h := a.alarmsOrErrors(ctx, st)
		h.endpoints = endpoints
		return h
	}
	leader := fmt.Sprintf("%x", st.Leader)
	for _, m := range members.Members {
		if m.ID == st.Leader {
			leader = m.Name
		}
	}
	return health{ready: true, phase: report.PhaseHealthy, endpoints: endpoints, selfID: self.ID, clusterID: st.Header.GetClusterId(), leader: st.Leader == self.ID,
		message: fmt.Sprintf("healthy, leader %s, %d/%d voters", leader, voters, a.cfg.Cluster.Size)}
}

// alarmsOrErrors words what the local member's status reports: etcd lists
// every raised alarm there ("memberID:… alarm:NOSPACE"); the alarm list
// names them, and problem.Alarm says what each means and what to do.
func (a *Agent) alarmsOrErrors(ctx context.Context, st *clientv3.StatusResponse) health {
	resp, err := a.client.AlarmList(ctx)
	if err != nil || len(resp.Alarms) == 0 {
		return health{phase: report.PhaseDegraded, message: fmt.Sprintf("degraded: %s", strings.Join(st.Errors, "; ")),
			problems: []problem.Problem{problem.LocalMemberUnhealthy.Newf(a.spec.Name, "local member %s reports: %s", a.spec.Name, strings.Join(st.Errors, "; "))}}
	}
	names := map[uint64]string{}
	if members, err := a.client.MemberList(ctx); err == nil {
		for _, m := range members.Members {
			names[m.ID] = m.Name
		}
	}
	h := health{phase: report.PhaseDegraded}
	for _, al := range resp.Alarms {
		name := cmp.Or(names[al.MemberID], fmt.Sprintf("%x", al.MemberID))
		space := ""
		if al.MemberID == st.Header.GetMemberId() {
			const mib = 1 << 20
			space = fmt.Sprintf("%.1f MiB on disk, %.1f MiB in use, quota %.1f MiB", float64(st.DbSize)/mib, float64(st.DbSizeInUse)/mib, float64(a.cfg.Etcd.QuotaBackendBytes)/mib)
		}
		h.problems = append(h.problems, problem.Alarm(al.Alarm.String(), name, space))
	}
	problem.Sort(h.problems)
	h.message = "degraded: " + problem.Line(h.problems)
	return h
}

// shortErr keeps status lines to one readable line.
func shortErr(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", probeTimeout)
	}
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func zapDiscard() *zap.Logger { return zap.NewNop() }
