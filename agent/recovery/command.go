package recovery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/refusal"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// The side of `etcd-agent recover`: it writes the request and follows the
// running agent's progress; the agent does the work.

// Options is what `etcd-agent recover` asks for.
type Options struct {
	From     Source
	Snapshot string // for FromSnapshot: latest, NAME, FILE or s3://…
	// AllowPartial lets "latest" choose among the snapshot stores that
	// answer when another does not (it may hold a newer snapshot).
	AllowPartial bool
	// Takeover replaces a recovery another node started and never finished.
	Takeover bool
	// Force recovers from this member although another member holds
	// newer entries.
	Force bool
	// Lost names members of the lost cluster that are gone for good.
	Lost []string
	// Replaces names the finished recovery generation this one replaces.
	Replaces int
	// Timeout bounds the wait for the new cluster's health. Zero: 30m.
	Timeout time.Duration
}

// agentAliveWithin is how fresh the running agent's report must be for
// RequestRecovery to count on it.
const agentAliveWithin = 30 * time.Second

// Deadlines of the command.
const (
	// defaultFollowTimeout is Options.Timeout's default.
	defaultFollowTimeout = 30 * time.Minute
	// registryReadTimeout bounds reading the registry's recovery record.
	registryReadTimeout = 10 * time.Second
	// latestTimeout bounds finding the latest snapshot in the stores.
	latestTimeout = 2 * time.Minute
	// followPoll is how often the request file is read again.
	followPoll = 250 * time.Millisecond
)

// RequestRecovery asks node n's agent to rebuild the cluster and follows it
// until the new cluster is healthy, calling say with each step. It refuses
// at once what it can tell here (no member data for FromMember, another
// node's unfinished recovery; a quorum that answers when no agent runs to
// check it); the agent checks the quorum again before it acts.
func RequestRecovery(ctx context.Context, n Requester, o Options, say func(at time.Time, msg string)) (Request, error) {
	progress := func(msg string) { say(time.Now(), msg) }
	if o.Timeout <= 0 {
		o.Timeout = defaultFollowTimeout
	}
	cfg := n.Config()
	// The running agent's report, read before anything here could be
	// mistaken for it.
	rep, _ := report.Read(cfg.Agent.StatusFile)
	dataDir := cfg.Node.DataDir
	if cur, pending := Pending(dataDir); pending {
		progress(fmt.Sprintf("a recovery from %s requested at %s is %s: following it", cur.Describe(), cur.RequestedAt.UTC().Format(time.RFC3339), cur.State))
		return follow(ctx, dataDir, len(cur.Progress), o.Timeout, say)
	}
	dataID, err := memberIdentity(dataDir)
	if err != nil {
		return Request{}, err
	}
	if o.From == FromMember {
		if dataID.ClusterID == 0 {
			return Request{}, refusal.Errorf("%s holds no etcd member: there is nothing to recover from on this node; run recover --from-member on a node whose data survived, or recover --from-snapshot", dataDir)
		}
		progress(fmt.Sprintf("this node holds member %x of cluster %x", dataID.MemberID, dataID.ClusterID))
	}
	if o.From == FromSnapshot && o.Snapshot == backup.Latest {
		// Resolved here, once, in front of the operator: a store that does
		// not answer is a refusal before anything is claimed, and the
		// agent (a resumed recovery too) restores exactly this one.
		m, where, err := latestSnapshot(ctx, n, o.AllowPartial)
		if err != nil {
			return Request{}, &refusal.Error{Reason: err}
		}
		progress(fmt.Sprintf("latest is snapshot %s in %s: cluster %s, recovery generation %d, revision %d", m.Name, where, m.ClusterID, m.Generation, m.Revision))
		o.Snapshot = m.Name
	}
	now := n.Now()
	req := Request{From: o.From, Snapshot: o.Snapshot, AllowPartial: o.AllowPartial, Takeover: o.Takeover, Force: o.Force, Lost: o.Lost, Replaces: o.Replaces,
		Token: NewToken(cfg.Cluster.Name, now), RequestedAt: now.UTC(), RequestedBy: os.Getpid(), State: Requested}

	// The registry's record, when it answers: refused at once when the
	// claim would be (the agent decides again when it claims).
	var existing *discovery.Recovery
	recorded := false
	if src, err := n.Discovery(); err == nil {
		if book, ok := src.(discovery.RecoveryBook); ok {
			rctx, cancel := context.WithTimeout(ctx, registryReadTimeout)
			rec, _, err := book.Recovery(rctx)
			cancel()
			if err == nil {
				existing, recorded = rec, true
				if _, err := Claim(ClaimFacts{Existing: existing, Self: n.Identity().Name, Request: req, Now: now}); err != nil {
					return Request{}, err
				}
			}
		}
	}

	if alive, why := rep.Alive(n.Now(), agentAliveWithin); !alive {
		// Nobody checks the quorum soon: check it here, so a mistake is
		// refused now rather than when the agent starts.
		progress("the agent is not running here (" + why + "): checking the quorum from this command")
		facts := quorumFacts(ctx, n, dataID.ClusterID)
		if err := Refusal(facts); err != nil {
			return Request{}, err
		}
		progress(describeProbes(facts))
		if recorded {
			if _, err := Claim(ClaimFacts{Existing: existing, Self: n.Identity().Name, Request: req, Now: now, Checked: true, Probed: facts.Asked()}); err != nil {
				return Request{}, err
			}
		}
		if o.From == FromMember {
			if s, _, _ := supersededByRegistry(ctx, dataDir, n.Discovery); s != nil {
				return Request{}, refuseSuperseded(s)
			}
			wf, err := walFacts(ctx, n, o.Lost, o.Force)
			if err != nil {
				return Request{}, err
			}
			progress(describeWALs(wf))
			if err := WALRefusal(wf); err != nil {
				return Request{}, err
			}
		}
		progress("the request is written; the agent carries it out when it starts (systemctl start etcd-agent)")
	}
	if err := WriteRequest(dataDir, req); err != nil {
		return Request{}, err
	}
	progress(fmt.Sprintf("recovery from %s requested (%s); the agent carries it out", req.Describe(), RequestPath(dataDir)))
	return follow(ctx, dataDir, 0, o.Timeout, say)
}

// latestSnapshot finds the newest snapshot in the node's stores (see
// backup.Newest) and where it is.
func latestSnapshot(ctx context.Context, n Requester, allowPartial bool) (backup.Meta, string, error) {
	ctx, cancel := context.WithTimeout(ctx, latestTimeout)
	defer cancel()
	src, err := backup.OpenSources(ctx, n.Config())
	if err != nil {
		return backup.Meta{}, "", fmt.Errorf("open the snapshot stores: %w", err)
	}
	src.AllowPartial = allowPartial
	st, m, err := backup.Newest(ctx, src)
	if err != nil {
		return backup.Meta{}, "", err
	}
	return m, st.Where(), nil
}

// follow prints the request's progress from line `seen` on until the agent
// finishes it.
func follow(ctx context.Context, dataDir string, seen int, timeout time.Duration, say func(at time.Time, msg string)) (Request, error) {
	deadline := time.Now().Add(timeout)
	for {
		req, ok, err := ReadRequest(dataDir)
		if err != nil {
			return req, err
		}
		if !ok {
			return req, errors.New("the recovery request was deleted while it ran")
		}
		for ; seen < len(req.Progress); seen++ {
			say(req.Progress[seen].At, req.Progress[seen].Msg)
		}
		switch req.State {
		case Done:
			return req, nil
		case Refused:
			return req, refusal.FromMessage(req.Error)
		case Failed:
			return req, errors.New(req.Error)
		}
		if time.Now().After(deadline) {
			return req, fmt.Errorf("the recovery is not finished after %s (state %s): watch `etcd-agent status` and the agent's log; the agent goes on", timeout, req.State)
		}
		if err := cluster.Sleep(ctx, followPoll); err != nil {
			return req, fmt.Errorf("stopped following (the agent goes on; run recover again to follow it): %w", err)
		}
	}
}
