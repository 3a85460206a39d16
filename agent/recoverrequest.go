package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// RecoverOptions is what `etcd-agent recover` asks for.
type RecoverOptions struct {
	From     recovery.Source
	Snapshot string // for recovery.FromSnapshot: latest, NAME, FILE or s3://…
	// Takeover replaces a recovery another node started and never finished.
	Takeover bool
	// Force recovers from this member although another member answers
	// with newer entries.
	Force bool
	// Timeout bounds the wait for the new cluster's health. Zero: 30m.
	Timeout time.Duration
}

// agentAliveWithin is how fresh the running agent's report must be for
// RequestRecovery to count on it.
const agentAliveWithin = 30 * time.Second

// RequestRecovery asks this node's agent to rebuild the cluster and follows
// it until the new cluster is healthy, calling progress with each step. It
// refuses at once what it can tell here (no member data for FromMember,
// another node's unfinished recovery; a quorum that answers when no agent
// runs to check it); the agent checks the quorum again before it acts.
func (a *Agent) RequestRecovery(ctx context.Context, o RecoverOptions, say func(at time.Time, msg string)) (recovery.Request, error) {
	progress := func(msg string) { say(time.Now(), msg) }
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	// The running agent's report, read before anything here could be
	// mistaken for it.
	rep, _ := report.Read(a.cfg.Agent.StatusFile)
	// Not resolveIdentity: that publishes this process's phase in the
	// status file, which belongs to the running agent.
	id, err := a.opts.Identity.Identity(ctx)
	if err != nil {
		return recovery.Request{}, fmt.Errorf("recover: %w", err)
	}
	a.id = id
	dataDir := a.cfg.Node.DataDir
	if cur, pending := recovery.Pending(dataDir); pending {
		progress(fmt.Sprintf("a recovery from %s requested at %s is %s: following it", cur.Describe(), cur.RequestedAt.UTC().Format(time.RFC3339), cur.State))
		return a.followRecovery(ctx, len(cur.Progress), o.Timeout, say)
	}
	dataID, err := memberIdentity(dataDir)
	if err != nil {
		return recovery.Request{}, err
	}
	if o.From == recovery.FromMember {
		if dataID.ClusterID == 0 {
			return recovery.Request{}, fmt.Errorf("refused: %s holds no etcd member: there is nothing to recover from on this node; run recover --from-member on a node whose data survived, or recover --from-snapshot", dataDir)
		}
		progress(fmt.Sprintf("this node holds member %x of cluster %x", dataID.MemberID, dataID.ClusterID))
	}
	now := a.now()
	req := recovery.Request{From: o.From, Snapshot: o.Snapshot, Takeover: o.Takeover, Force: o.Force,
		Token: recovery.NewToken(a.cfg.Cluster.Name, now), RequestedAt: now.UTC(), RequestedBy: os.Getpid(), State: recovery.Requested}

	if src, err := a.discoverySource(); err == nil {
		if book, ok := src.(discovery.RecoveryBook); ok {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			existing, _, err := book.Recovery(rctx)
			cancel()
			if err == nil {
				if _, err := recovery.Claim(recovery.ClaimFacts{Existing: existing, Self: a.id.Name, Request: req, Now: now}); err != nil {
					return recovery.Request{}, err
				}
			}
		}
	}

	if alive, why := rep.Alive(a.now(), agentAliveWithin); !alive {
		// Nobody checks the quorum soon: check it here, so a mistake is
		// refused now rather than when the agent starts.
		progress("the agent is not running here (" + why + "): checking the quorum from this command")
		facts := a.quorumFacts(ctx, dataID.ClusterID)
		facts.From, facts.Force = o.From, o.Force
		if err := recovery.Refusal(facts); err != nil {
			return recovery.Request{}, err
		}
		progress(describeProbes(facts))
		progress("the request is written; the agent carries it out when it starts (systemctl start etcd-agent)")
	}
	if err := recovery.WriteRequest(dataDir, req); err != nil {
		return recovery.Request{}, err
	}
	progress(fmt.Sprintf("recovery from %s requested (%s); the agent carries it out", req.Describe(), recovery.RequestPath(dataDir)))
	return a.followRecovery(ctx, 0, o.Timeout, say)
}

// followRecovery prints the request's progress from line `seen` on until the
// agent finishes it.
func (a *Agent) followRecovery(ctx context.Context, seen int, timeout time.Duration, say func(at time.Time, msg string)) (recovery.Request, error) {
	deadline := time.Now().Add(timeout)
	for {
		req, ok, err := recovery.ReadRequest(a.cfg.Node.DataDir)
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
		case recovery.Done:
			return req, nil
		case recovery.Refused, recovery.Failed:
			return req, errors.New(req.Error)
		}
		if time.Now().After(deadline) {
			return req, fmt.Errorf("the recovery is not finished after %s (state %s): watch `etcd-agent status` and the agent's log; the agent goes on", timeout, req.State)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return req, fmt.Errorf("stopped following (the agent goes on; run recover again to follow it): %w", err)
		}
	}
}
