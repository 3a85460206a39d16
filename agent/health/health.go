// Package health is the local member's health as the agent judges it: one
// probe (Probe) that says whether the member is healthy, a voter and caught
// up (what READY=1 means), and if not, why, as a status line and problems.
package health

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

	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Timeout bounds one health probe; a member that cannot answer within it is
// not healthy.
const Timeout = 5 * time.Second

// Health is one observation of the local member.
type Health struct {
	Ready     bool
	Learner   bool   // the local member is a Learner: promote it
	SelfID    uint64 // the local member's ID, when it is in the member list
	ClusterID uint64
	Leader    bool // the local member is the leader
	Phase     report.Phase
	Message   string
	Endpoints []string
	// Members is the member list the probe saw.
	Members []*etcdserverpb.Member
	// Problems are what this observation found wrong, as data (the
	// report's "health" problems).
	Problems []problem.Problem
}

// Target is the member a probe asks.
type Target struct {
	// Local reaches the member itself.
	Local *clientv3.Client
	// Cluster reaches the other members, for what a learner cannot serve
	// (the member list); nil or failing: only Local is asked.
	Cluster func() (*clientv3.Client, error)
	// Name and ClientURL are the member's.
	Name      string
	ClientURL string
	// Size is the cluster's configured voter count (shown as n/Size) and
	// Quota its backend quota (shown beside a NOSPACE alarm).
	Size  int
	Quota int64
}

// probe asks the local member, over TLS with the agent's client cert, whether
// it is healthy, a voter and caught up. A linearizable read succeeding on the
// local member proves it has applied everything the leader had committed when
// the read started, which is what "caught up" must mean for READY.
func Probe(ctx context.Context, t Target) Health {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	degraded := func(format string, args ...any) Health {
		msg := fmt.Sprintf(format, args...)
		text := strings.TrimPrefix(msg, "degraded: ")
		if !strings.HasPrefix(text, "local member") {
			text = "local member " + t.Name + ": " + text
		}
		return Health{Phase: report.PhaseDegraded, Message: msg, Problems: []problem.Problem{problem.LocalMemberUnhealthy.New(t.Name, text)}}
	}
	members, err := t.Local.MemberList(ctx)
	if err != nil && strings.Contains(err.Error(), rpctypes.ErrorDesc(rpctypes.ErrGRPCNotSupportedForLearner)) {
		// A learner serves no member list: ask the other members.
		if t.Cluster != nil {
			if cli, cerr := t.Cluster(); cerr == nil {
				members, err = cli.MemberList(ctx)
			}
		}
	}
	if err != nil {
		return degraded("degraded: member list failed: %v", ShortErr(err))
	}
	var endpoints []string
	var self *etcdserverpb.Member
	voters := 0
	for _, m := range members.Members {
		endpoints = append(endpoints, m.ClientURLs...)
		if !m.IsLearner {
			voters++
		}
		if m.Name == t.Name {
			self = m
		}
	}
	st, err := t.Local.Status(ctx, t.ClientURL)
	if err != nil {
		return degraded("degraded: local member status failed: %v", ShortErr(err))
	}
	if self == nil {
		h := degraded("local member %s not in the member list (%d members)", t.Name, len(members.Members))
		h.Endpoints = endpoints
		return h
	}
	if self.IsLearner {
		return Health{Phase: report.PhaseLearner, Endpoints: endpoints, Learner: true, SelfID: self.ID,
			Message: fmt.Sprintf("learner, catching up (raft index %d)", st.RaftIndex)}
	}
	if st.Leader == 0 {
		h := degraded("degraded: no leader (quorum lost?), %d members", len(members.Members))
		h.Problems = []problem.Problem{problem.NoLeader.Newf("", "local member %s knows no Leader: the cluster has lost quorum or is electing one", t.Name)}
		h.Endpoints = endpoints
		return h
	}
	if _, err := t.Local.Get(ctx, "health"); err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		h := degraded("degraded: linearizable read failed: %v", ShortErr(err))
		h.Endpoints = endpoints
		return h
	}
	if len(st.Errors) > 0 {
		h := alarmsOrErrors(ctx, t, st)
		h.Endpoints = endpoints
		return h
	}
	leader := fmt.Sprintf("%x", st.Leader)
	for _, m := range members.Members {
		if m.ID == st.Leader {
			leader = m.Name
		}
	}
	return Health{Ready: true, Phase: report.PhaseHealthy, Endpoints: endpoints, Members: members.Members, SelfID: self.ID, ClusterID: st.Header.GetClusterId(), Leader: st.Leader == self.ID,
		Message: fmt.Sprintf("healthy, leader %s, %d/%d voters", leader, voters, t.Size)}
}

// alarmsOrErrors words what the local member's status reports: etcd lists
// every raised alarm there ("memberID:… alarm:NOSPACE"); the alarm list
// names them, and problem.Alarm says what each means and what to do.
func alarmsOrErrors(ctx context.Context, t Target, st *clientv3.StatusResponse) Health {
	resp, err := t.Local.AlarmList(ctx)
	if err != nil || len(resp.Alarms) == 0 {
		return Health{Phase: report.PhaseDegraded, Message: fmt.Sprintf("degraded: %s", strings.Join(st.Errors, "; ")),
			Problems: []problem.Problem{problem.LocalMemberUnhealthy.Newf(t.Name, "local member %s reports: %s", t.Name, strings.Join(st.Errors, "; "))}}
	}
	names := map[uint64]string{}
	if members, err := t.Local.MemberList(ctx); err == nil {
		for _, m := range members.Members {
			names[m.ID] = m.Name
		}
	}
	h := Health{Phase: report.PhaseDegraded}
	for _, al := range resp.Alarms {
		name := cmp.Or(names[al.MemberID], fmt.Sprintf("%x", al.MemberID))
		space := ""
		if al.MemberID == st.Header.GetMemberId() {
			const mib = 1 << 20
			space = fmt.Sprintf("%.1f MiB on disk, %.1f MiB in use, quota %.1f MiB", float64(st.DbSize)/mib, float64(st.DbSizeInUse)/mib, float64(t.Quota)/mib)
		}
		h.Problems = append(h.Problems, problem.Alarm(al.Alarm.String(), name, space))
	}
	problem.Sort(h.Problems)
	h.Message = "degraded: " + problem.Line(h.Problems)
	return h
}

// ShortErr keeps status lines to one readable line.
func ShortErr(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", Timeout)
	}
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
