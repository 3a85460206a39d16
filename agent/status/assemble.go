package status

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
	"github.com/etcd-agent/etcd-agent/agent/problem"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// certWarnDays: a certificate with fewer days left is a problem. The agent
// renews well before (pki.renewBefore, 30 days by default), so reaching it
// means renewal is failing.
const certWarnDays = 7

// memberList is the member list and alarms, and who answered them.
type memberList struct {
	from      string
	err       string // why no endpoint answered, "" when one did
	members   []*pb.Member
	alarms    []*pb.AlarmMember
	alarmsErr string
}

// facts is everything Gather learned; assemble is a pure function of it.
type facts struct {
	now    time.Time
	quota  int64
	size   int // cluster.size, 0: not checked
	node   Node
	list   memberList
	probes []probe
	// hashRev is the revision the probes' HashKV answers are at, 0 if none.
	hashRev int64
}

// assemble builds the view from what was gathered.
func assemble(f facts) View {
	v := View{
		CheckedAt:       f.now.UTC(),
		Node:            f.node,
		MemberListFrom:  f.list.from,
		MemberListError: f.list.err,
		Members:         []Member{},
		Endpoints:       []Endpoint{},
	}
	byID := map[uint64]*pb.Member{}
	for _, m := range f.list.members {
		byID[m.ID] = m
		v.Members = append(v.Members, Member{
			ID: memberID(m.ID), Name: m.Name, IsLearner: m.IsLearner,
			PeerURLs: nonNil(m.PeerURLs), ClientURLs: nonNil(m.ClientURLs),
		})
	}
	slices.SortFunc(v.Members, func(a, b Member) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })

	alarms := map[uint64][]string{}
	for _, a := range f.list.alarms {
		alarms[a.MemberID] = append(alarms[a.MemberID], a.Alarm.String())
	}
	for _, pr := range f.probes {
		v.Endpoints = append(v.Endpoints, endpointRow(pr, f.list.members, byID, alarms, f.quota))
	}
	slices.SortFunc(v.Endpoints, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	answered := 0
	for _, pr := range f.probes {
		if pr.status != nil {
			answered++
		}
	}
	v.HashKV = compareHashes(v.Endpoints, f.probes, f.hashRev)
	v.Summary = summarize(v, f.list, alarms, answered, f.size, f.now)
	return v
}

// compareHashes applies hashcheck's rule to the HashKV answers, in the order
// of the endpoint rows, and puts each member's hash into its row. A learner
// and an endpoint that did not answer are listed as not compared; a second
// endpoint of a member already asked is left out.
func compareHashes(rows []Endpoint, probes []probe, rev int64) hashcheck.HashCheck {
	byEndpoint := map[string]probe{}
	for _, pr := range probes {
		byEndpoint[pr.endpoint] = pr
	}
	var answers []hashcheck.Answer
	var hashed []int // row index of each answer
	for i, e := range rows {
		pr := byEndpoint[e.Endpoint]
		var a hashcheck.Answer
		switch {
		case pr.hash != nil:
			a = *pr.hash
		case pr.status == nil:
			a = hashcheck.Answer{Err: hashcheck.ErrNoAnswer}
		case pr.status.IsLearner:
			a = hashcheck.Answer{MemberID: pr.status.GetHeader().GetMemberId(), Err: hashcheck.ErrLearner}
		default:
			continue // this member's other endpoint was asked
		}
		a.Endpoint, a.Name = e.Endpoint, e.Name
		answers = append(answers, a)
		hashed = append(hashed, i)
	}
	hc := hashcheck.Compare(rev, answers)
	for j, r := range hc.Results {
		rows[hashed[j]].HashKV = r.Hash
	}
	return hc
}

// endpointRow turns one probe into a row, naming the member behind it by
// the ID it answered with, or else by its client URL in the member list.
func endpointRow(pr probe, members []*pb.Member, byID map[uint64]*pb.Member, alarms map[uint64][]string, quota int64) Endpoint {
	e := Endpoint{Endpoint: pr.endpoint, Quota: quota}
	var m *pb.Member
	if st := pr.status; st != nil {
		id := st.GetHeader().GetMemberId()
		m = byID[id]
		e.MemberID = memberID(id)
		e.Leader = st.Leader != 0 && st.Leader == id
		if st.Leader != 0 {
			e.LeaderID = memberID(st.Leader)
		}
		e.RaftTerm, e.RaftIndex, e.RaftAppliedIndex = st.RaftTerm, st.RaftIndex, st.RaftAppliedIndex
		e.DBSize, e.DBSizeInUse, e.Version = st.DbSize, st.DbSizeInUse, st.Version
		if st.DbSizeQuota > 0 {
			e.Quota = st.DbSizeQuota
		}
		e.Alarms = alarms[id]
		switch {
		case st.IsLearner:
			e.Role = "learner"
		case e.Leader:
			e.Role = "leader"
		default:
			e.Role = "follower"
		}
	} else {
		for _, cand := range members {
			if slices.ContainsFunc(cand.ClientURLs, func(u string) bool { return strings.TrimSuffix(u, "/") == pr.endpoint }) {
				m = cand
				e.MemberID = memberID(cand.ID)
				e.Alarms = alarms[cand.ID]
				if cand.IsLearner {
					e.Role = "learner"
				}
				break
			}
		}
	}
	if m != nil {
		e.Name = m.Name
	}

	var errs []string
	switch {
	case pr.statusErr != nil:
		errs = append(errs, pr.statusErr.Error())
	case pr.healthErr != nil:
		errs = append(errs, "health read: "+pr.healthErr.Error())
	default:
		e.HealthLatencyMS = math.Round(float64(pr.latency)/float64(time.Millisecond)*100) / 100
	}
	if pr.status != nil {
		if reported := memberErrors(pr.status.Errors); len(reported) > 0 {
			errs = append(errs, "member reports: "+strings.Join(reported, ", "))
		}
	}
	e.Error = strings.Join(errs, "; ")
	e.Healthy = e.Error == ""
	return e
}

// memberErrors drops the alarms from a member's status errors: etcd lists
// every raised alarm there ("memberID:… alarm:NOSPACE"), and an alarm is a
// cluster problem, shown in words from the alarm list, not a sign that this
// member is unhealthy.
func memberErrors(errs []string) []string {
	var out []string
	for _, e := range errs {
		if strings.HasPrefix(e, "memberID:") && strings.Contains(e, " alarm:") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// summarize gives the verdict and lists every problem as data.
func summarize(v View, list memberList, alarms map[uint64][]string, answered, size int, now time.Time) Summary {
	s := Summary{Members: len(v.Members), Answered: answered, Size: size, Problems: []problem.Problem{}}
	s.HasLeader, s.Leader = leaderOf(v)
	add := func(p problem.Problem) { s.Problems = append(s.Problems, p) }

	if list.err != "" {
		if s.Answered == 0 {
			add(problem.ClusterUnreachable.Newf("", "no etcd member answered: %s", list.err))
		} else {
			add(problem.NoMemberList.Newf("", "no member list: %s", list.err))
			for _, e := range v.Endpoints {
				if e.Error != "" {
					add(problem.MemberUnhealthy.Newf(cmp.Or(e.Name, e.Endpoint), "endpoint %s: %s", e.Endpoint, e.Error))
				}
			}
		}
	}
	for _, m := range v.Members {
		if m.IsLearner {
			s.Learners++
			add(problem.MemberLearner.Newf(displayName(m), "member %s is a learner (joining, not yet promoted to voter)", displayName(m)))
		} else {
			s.Voters++
		}
		var rows []Endpoint
		for _, e := range v.Endpoints {
			if e.MemberID == m.ID {
				rows = append(rows, e)
			}
		}
		switch {
		case len(m.ClientURLs) == 0:
			add(problem.MemberUnstarted.Newf(displayName(m), "member %s has no client URL: it has not started yet", displayName(m)))
		case slices.ContainsFunc(rows, func(e Endpoint) bool { return e.Healthy }):
			s.HealthyMembers++
		case len(rows) == 0:
			add(problem.MemberUnhealthy.Newf(displayName(m), "member %s: not asked", displayName(m)))
		default:
			for _, e := range rows {
				add(problem.MemberUnhealthy.Newf(displayName(m), "member %s (%s): %s", displayName(m), e.Endpoint, e.Error))
			}
		}
	}
	if s.Answered > 0 && !s.HasLeader {
		add(problem.NoLeader.New("", "no leader: no member that answered knows one; the cluster has lost quorum or is electing a leader"))
	}
	ids := make([]uint64, 0, len(alarms))
	for id := range alarms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, a := range alarms[id] {
			add(alarmProblem(v, id, a))
		}
	}
	if list.alarmsErr != "" {
		add(problem.AlarmsUnknown.New("", list.alarmsErr))
	}
	underReplicated := list.err == "" && s.Members > 0 && s.Voters < size
	if underReplicated {
		add(problem.UnderReplicated.Newf("", "%d of %d voters (cluster.size): the cluster tolerates %s instead of %s",
			s.Voters, size, failures(tolerates(s.Voters)), failures(tolerates(size))))
	}
	if v.HashKV.Mismatch {
		add(problem.HashMismatch.Newf("", "%s: replicas diverged (see the HASHKV column)", v.HashKV.Description))
	}
	s.Healthy = list.err == "" && s.Members > 0 && s.HealthyMembers == s.Members && s.HasLeader && len(alarms) == 0 && list.alarmsErr == "" &&
		!v.HashKV.Mismatch && !underReplicated

	// The agent's own findings that status found itself too (same code
	// and subject, e.g. an alarm) are listed once.
	s.Problems = problem.Merge(s.Problems, nodeProblems(v.Node, now)...)
	problem.Sort(s.Problems)
	return s
}

// tolerates is how many of n voters may fail with a quorum left.
func tolerates(n int) int { return max(n-1, 0) / 2 }

func failures(n int) string {
	switch n {
	case 0:
		return "no failure"
	case 1:
		return "1 failed member"
	}
	return fmt.Sprintf("%d failed members", n)
}

// leaderOf is the leader as the members that answered see it: the one an
// endpoint reports as itself, else the ID most members report. A cluster
// whose members name a leader is never called leaderless, even when a
// health read fails (an alarm, a slow disk).
func leaderOf(v View) (bool, string) {
	for _, e := range v.Endpoints {
		if e.Leader {
			return true, cmp.Or(e.Name, e.MemberID)
		}
	}
	votes := map[string]int{}
	best := ""
	for _, e := range v.Endpoints {
		if e.LeaderID == "" {
			continue
		}
		votes[e.LeaderID]++
		if best == "" || votes[e.LeaderID] > votes[best] {
			best = e.LeaderID
		}
	}
	if best == "" {
		return false, ""
	}
	if i := slices.IndexFunc(v.Members, func(m Member) bool { return m.ID == best }); i >= 0 {
		return true, displayName(v.Members[i]) + " (did not answer here)"
	}
	return true, best + " (did not answer here)"
}

// alarmProblem names an etcd alarm in plain words, with what it does to
// the cluster and what to do.
func alarmProblem(v View, id uint64, alarm string) problem.Problem {
	name := memberID(id)
	if i := slices.IndexFunc(v.Members, func(m Member) bool { return m.ID == memberID(id) }); i >= 0 {
		name = displayName(v.Members[i])
	}
	space := ""
	if i := slices.IndexFunc(v.Endpoints, func(e Endpoint) bool { return e.MemberID == memberID(id) && e.DBSize > 0 }); i >= 0 {
		e := v.Endpoints[i]
		space = fmt.Sprintf("%s on disk, %s in use", humanBytes(e.DBSize), humanBytes(e.DBSizeInUse))
		if e.Quota > 0 {
			space += ", quota " + humanBytes(e.Quota)
		}
	}
	return problem.Alarm(alarm, name, space)
}

// nodeProblems are this node's agent and certificate problems, with the
// problems the agent itself published (backups, rolling changes, …).
func nodeProblems(n Node, now time.Time) []problem.Problem {
	var out []problem.Problem
	switch {
	case !n.AgentAlive:
		out = append(out, problem.AgentNotRunning.New(n.Name, "agent not running: "+n.AgentState))
	case n.Phase != report.PhaseHealthy:
		msg := "agent on this node is " + string(n.Phase)
		if n.Message != "" {
			msg += ": " + n.Message
		}
		out = append(out, problem.AgentNotHealthy.New(n.Name, msg))
	}
	out = append(out, backupProblems(n.Backup, now, firstTransition(n))...)
	for _, c := range n.Certs {
		switch {
		case !c.NotAfter.After(now):
			out = append(out, problem.CertExpired.Newf(c.Role, "%s certificate expired %s", c.Role, c.NotAfter.Format(time.DateOnly)))
		case c.DaysLeft < certWarnDays:
			out = append(out, problem.CertExpiring.Newf(c.Role, "%s certificate expires in %dd on %s", c.Role, c.DaysLeft, c.NotAfter.Format(time.DateOnly)))
		}
	}
	if n.AgentAlive {
		out = append(out, n.Problems...)
	}
	return out
}

func displayName(m Member) string {
	if m.Name == "" {
		return m.ID + " (unstarted)"
	}
	return m.Name
}

func memberID(id uint64) string { return fmt.Sprintf("%x", id) }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
