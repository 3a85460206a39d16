package testcluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/internal/lintest"
)

// Member is one entry of the member list.
type Member struct {
	ID      uint64
	Learner bool
}

// Members is the member list by name; a member added but not started yet
// is listed as "(unstarted <id> <peer URLs>)".
func Members(ctx context.Context, cli *clientv3.Client) (map[string]Member, error) {
	resp, err := cli.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]Member{}
	for _, m := range resp.Members {
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("(unstarted %x %v)", m.ID, m.PeerURLs)
		}
		out[name] = Member{ID: m.ID, Learner: m.IsLearner}
	}
	return out, nil
}

// WaitMembers waits until the member list is exactly the nodes idx, all
// voters, and each of them answers a status request as a voter with a
// leader; it returns the members, or the last thing that was not so.
func (e *Env) WaitMembers(cli *clientv3.Client, timeout time.Duration, idx ...int) (map[string]Member, error) {
	var want []string
	for _, i := range idx {
		want = append(want, e.MemberName(i))
	}
	slices.Sort(want)
	deadline := time.Now().Add(timeout)
	for {
		ms, problem := e.checkMembers(cli, want, idx)
		if problem == "" {
			return ms, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("members not %v after %s: %s", want, timeout, problem)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (e *Env) checkMembers(cli *clientv3.Client, want []string, idx []int) (map[string]Member, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := Members(ctx, cli)
	if err != nil {
		return nil, "member list: " + err.Error()
	}
	var got []string
	for name, m := range ms {
		got = append(got, name)
		if m.Learner {
			return nil, fmt.Sprintf("member %s is a learner", name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return nil, fmt.Sprintf("members are %v", got)
	}
	for _, i := range idx {
		st, err := cli.Status(ctx, e.ClientURL(i))
		if err != nil {
			return nil, fmt.Sprintf("status of %s: %v", e.MemberName(i), err)
		}
		if st.IsLearner || st.Leader == 0 {
			return nil, fmt.Sprintf("%s: learner %v, leader %x", e.MemberName(i), st.IsLearner, st.Leader)
		}
	}
	return ms, ""
}

// Proof is how a scenario ends: within timeout the voters are exactly the
// nodes idx; then every write the writer had acknowledged is read back and
// its history is linearizable, HashKV is equal on all of them, and they are
// still the voters. describe adds the nodes' states to a membership failure.
func (e *Env) Proof(w *lintest.Writer, cli *clientv3.Client, timeout time.Duration, describe func() string, idx ...int) map[string]Member {
	e.T.Helper()
	cli.SetEndpoints(e.Endpoints(idx...)...)
	ms, err := e.WaitMembers(cli, timeout, idx...)
	if err != nil {
		e.T.Fatalf("%v\n%s", err, describe())
	}
	w.Verify(e.T, cli)
	lintest.HashKVEqual(e.T, cli, e.Endpoints(idx...))
	if _, err := e.WaitMembers(cli, 10*time.Second, idx...); err != nil {
		e.T.Fatalf("after the proof: %v\n%s", err, describe())
	}
	return ms
}
