package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/recovery"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// Disaster recovery, the agent's side. `etcd-agent recover` writes a request
// file beside the data dir (recovery.RequestPath); the running agent's pass
// notices it, whatever stage it waits in (no quorum, a join that waits for
// one), and ends; Run then rebuilds the cluster on this node and starts the
// pass again, which restarts the new member in place. The agent, not the
// command, does the work: it owns the etcd it must stop (in-process when
// embedded), and a recovery interrupted by a crash resumes at its next start.

// recoverNeeded ends a pass: a recovery was requested.
type recoverNeeded struct {
	req recovery.Request
}

func (r *recoverNeeded) Error() string { return "recovery requested: from " + r.req.Describe() }

func asRecover(err error) (*recoverNeeded, bool) {
	var r *recoverNeeded
	return r, errors.As(err, &r)
}

// recoveryPoll is how often a pass looks for a recovery request.
const recoveryPoll = 500 * time.Millisecond

// checkRecoveryRequest ends the pass when a recovery request appears.
func (a *Agent) checkRecoveryRequest(context.Context) error {
	if req, ok := recovery.Pending(a.cfg.Node.DataDir); ok && req.State == recovery.Requested {
		a.log.Warn("recovery requested", "from", req.Describe())
		return &recoverNeeded{req: req}
	}
	return nil
}

// recoveryToResume is a request the agent must act on when a pass reaches
// the membership stage: a new one, one it was carrying out when it died, or
// one whose new member it started and must see healthy.
func (a *Agent) recoveryToResume() (recovery.Request, bool) {
	req, ok := recovery.Pending(a.cfg.Node.DataDir)
	if !ok || (req.State == recovery.Starting && a.recovering != nil) {
		return recovery.Request{}, false
	}
	return req, true
}

// recovering is a recovery whose new member has not been healthy yet: the
// ready stage finishes it.
type recovering struct {
	req     recovery.Request
	rec     discovery.Recovery
	version int64 // of the registry record; -1: no registry
	book    discovery.RecoveryBook
	// moved: the new member's data is in place of the old.
	moved bool
}

// recoverCluster carries out a recovery request. A refusal or a failure is
// written to the request (the command prints it) and the node goes on as
// before; only a cancelled ctx is returned.
func (a *Agent) recoverCluster(ctx context.Context, req recovery.Request) error {
	if req.RequestedAt.IsZero() {
		req.RequestedAt = a.now()
	}
	if req.Token == "" {
		req.Token = recovery.NewToken(a.cfg.Cluster.Name, req.RequestedAt)
	}
	req.State = recovery.Running
	progress := func(msg string) {
		req.Progress = append(req.Progress, recovery.Line{At: a.now().UTC(), Msg: msg})
		if err := recovery.WriteRequest(a.cfg.Node.DataDir, req); err != nil {
			a.log.Warn("write recovery progress", "err", err)
		}
		a.log.Info("recovery", "step", msg)
		a.setPhase(report.PhaseRecovering, "recovering the cluster: "+msg)
	}
	progress("recovery from " + req.Describe() + " picked up by the agent (pid " + fmt.Sprint(os.Getpid()) + ")")
	r := &recovering{version: -1}
	err := a.rebuild(ctx, &req, r, progress)
	if err != nil {
		if r.book != nil && r.rec.State == discovery.RecoveryStarted && !r.moved {
			// The new member never ran: its cluster replaces nothing.
			r.rec.State = discovery.RecoveryFailed
			if werr := a.writeRecoveryRecord(context.WithoutCancel(ctx), r); werr != nil {
				a.log.Warn("mark the recovery record failed", "err", werr)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		req.State, req.Error = recovery.Failed, err.Error()
		if strings.HasPrefix(err.Error(), "refused") {
			req.State = recovery.Refused
		}
		if req.State == recovery.Refused {
			progress("recovery refused; nothing was changed")
		} else {
			progress("recovery failed; the node goes on as before (its data is kept)")
		}
		a.rec.AddDecision(report.Action("recover-"+string(req.State)), err.Error())
		a.log.Error("recovery not done", "state", req.State, "err", err)
		return nil
	}
	req.State = recovery.Starting
	if err := recovery.WriteRequest(a.cfg.Node.DataDir, req); err != nil {
		a.log.Warn("write recovery progress", "err", err)
	}
	r.req = req
	a.recovering = r
	return nil
}

// rebuild checks that the quorum is gone, claims the recovery in the
// registry, stops etcd, builds the new member's data and moves it in place
// of the old data dir (which is kept, moved aside). A request that was
// running when the agent died resumes: once the new member's data is in
// place (or only waits to be moved in), it is not built again.
func (a *Agent) rebuild(ctx context.Context, req *recovery.Request, r *recovering, progress func(string)) error {
	dataDir := a.cfg.Node.DataDir
	work := recovery.WorkDir(dataDir)
	newDir := filepath.Join(work, "new")
	dataID, err := memberIdentity(dataDir)
	if err != nil {
		return err
	}
	if newID, _ := memberIdentity(newDir); req.ClusterID != "" && dataID.ClusterID == 0 && hexID(newID.ClusterID) == req.ClusterID {
		// Died between moving the old data aside and moving the new in.
		if err := os.RemoveAll(dataDir); err != nil {
			return err
		}
		if err := os.Rename(newDir, dataDir); err != nil {
			return fmt.Errorf("move the new member's data into %s: %w", dataDir, err)
		}
		dataID = newID
	}
	resumed := req.ClusterID != "" && hexID(dataID.ClusterID) == req.ClusterID
	if req.From == recovery.FromMember && dataID.ClusterID == 0 && !resumed {
		return fmt.Errorf("refused: %s holds no etcd member: there is nothing to recover from on this node; run recover --from-member on a node whose data survived, or recover --from-snapshot", dataDir)
	}

	src, err := a.discoverySource()
	if err != nil {
		return err
	}
	r.req = *req
	if resumed {
		a.resumeRecord(ctx, src, r)
		progress("the new member's data is already in place (resuming)")
		return nil
	}

	progress("checking that no quorum answers")
	facts := a.quorumFacts(ctx, dataID.ClusterID)
	facts.From, facts.Force = req.From, req.Force
	if err := recovery.Refusal(facts); err != nil {
		return err
	}
	progress(describeProbes(facts))

	known := []string{hexID(dataID.ClusterID)}
	if fb, ok := src.(discovery.FormationBook); ok {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := a.retry(rctx, "reading the formation record", func(ctx context.Context) error {
			f, err := fb.Formation(ctx)
			if err == nil && f.Formed != nil {
				known = append(known, f.Formed.ClusterID)
			}
			return err
		})
		cancel()
		if err != nil {
			return fmt.Errorf("discovery does not answer, so the recovery cannot be recorded where the other nodes look: %w", err)
		}
	}
	if book, ok := src.(discovery.RecoveryBook); ok {
		r.book = book
		if err := a.claimRecovery(ctx, r, known); err != nil {
			return err
		}
		progress(fmt.Sprintf("recorded in discovery: %s", r.rec))
	} else {
		r.rec, _ = recovery.Claim(recovery.ClaimFacts{Self: a.id.Name, Request: *req, Known: known, Now: a.now()})
		progress("static discovery keeps no registry: the recovery is recorded in the new cluster itself, where old members that reach it read it")
	}
	progress("stopping the local etcd")
	if err := a.stopForRecovery(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", work, err)
	}
	snapFile, err := a.recoverySnapshot(ctx, req, r, dataID, work, progress)
	if err != nil {
		return err
	}

	if err := os.RemoveAll(newDir); err != nil { // an earlier attempt's output
		return err
	}
	peer := a.specBase().PeerURL()
	progress(fmt.Sprintf("restoring into a new cluster (token %s, member %s=%s), revision bumped by %d and marked compacted", req.Token, a.id.Name, peer, backup.DefaultRevisionBump))
	if err := backup.Restore(ctx, snapFile, backup.RestoreOptions{DataDir: newDir, Name: a.id.Name, PeerURL: peer, ClusterToken: req.Token, Logger: a.log}); err != nil {
		return err
	}
	newID, err := datadir.ReadIdentity(newDir)
	if err != nil {
		return err
	}
	r.rec.ClusterID = hexID(newID.ClusterID)
	if r.book != nil {
		// Recorded before the new member first starts: from now on an old
		// member that reads the registry moves its data aside.
		if err := a.writeRecoveryRecord(ctx, r); err != nil {
			return err
		}
	}
	req.ClusterID, req.Replaced = r.rec.ClusterID, r.rec.Replaced
	progress(fmt.Sprintf("new cluster %s, member %x", r.rec.ClusterID, newID.MemberID))

	if dataID.ClusterID != 0 {
		moved, err := datadir.MoveAside(dataDir, fmt.Sprintf("replaced by the recovery into cluster %s (generation %d)", r.rec.ClusterID, r.rec.Generation), a.now())
		if err != nil {
			return err
		}
		progress("old data dir kept at " + moved)
		a.rec.AddDecision(report.ActionMoveAside, "replaced by the recovery into cluster "+r.rec.ClusterID+"; data kept at "+moved)
	} else if err := os.RemoveAll(dataDir); err != nil { // no member in it
		return err
	}
	if err := os.Rename(newDir, dataDir); err != nil {
		return fmt.Errorf("move the new member's data into %s: %w", dataDir, err)
	}
	r.moved = true
	// The old cluster's endpoints are of no use to the new one.
	_ = os.Remove(endpointsPath(dataDir))
	if err := os.RemoveAll(work); err != nil {
		a.log.Warn("remove the recovery's work dir", "dir", work, "err", err)
	}
	progress("starting the new cluster's first member")
	a.rec.AddDecision(report.ActionRecover, fmt.Sprintf("new cluster %s from %s (%s)", r.rec.ClusterID, req.Describe(), r.rec))
	return nil
}

// recoverySnapshot makes or fetches the snapshot the new member is restored
// from, in work.
func (a *Agent) recoverySnapshot(ctx context.Context, req *recovery.Request, r *recovering, dataID datadir.Identity, work string, progress func(string)) (string, error) {
	switch req.From {
	case recovery.FromMember:
		progress(fmt.Sprintf("applying every entry of member %x's WAL in a throw-away copy started alone, then taking a snapshot", dataID.MemberID))
		spec := a.specBase()
		member, err := spec.EmbedConfig(a.log)
		if err != nil {
			return "", err
		}
		ms, err := recovery.SnapshotFromMember(ctx, a.cfg.Node.DataDir, work, member, a.log)
		if err != nil {
			return "", fmt.Errorf("snapshot this member's data: %w", err)
		}
		kept := ""
		if ms.LastIndex > ms.WALCommit {
			kept = fmt.Sprintf("; %d entries past the commit index this member knew (%d) kept", ms.LastIndex-ms.WALCommit, ms.WALCommit)
		}
		progress(fmt.Sprintf("snapshot of member %x at revision %d (raft index %d%s)", ms.MemberID, ms.Revision, ms.LastIndex, kept))
		return ms.Path, nil
	case recovery.FromSnapshot:
		file := filepath.Join(work, "fetched.db")
		progress("fetching snapshot " + req.Snapshot)
		srcs, err := a.snapshotSources(ctx)
		if err != nil {
			return "", err
		}
		meta, err := backup.Fetch(ctx, srcs, req.Snapshot, file)
		if err != nil {
			return "", err
		}
		progress(fmt.Sprintf("snapshot %s: cluster %s, revision %d, %d bytes, sha256 %s checked", meta.Name, meta.ClusterID, meta.Revision, meta.Size, shortHash(meta.SHA256)))
		if meta.ClusterID != "" && !slices.Contains(r.rec.Replaced, meta.ClusterID) {
			r.rec.Replaced = append(r.rec.Replaced, meta.ClusterID)
			slices.Sort(r.rec.Replaced)
		}
		return file, nil
	}
	return "", fmt.Errorf("unknown recovery source %q", req.From)
}

// memberIdentity is the member in dir, or the zero identity when it holds
// none.
func memberIdentity(dir string) (datadir.Identity, error) {
	has, err := datadir.HasMember(dir)
	if err != nil || !has {
		return datadir.Identity{}, err
	}
	return datadir.ReadIdentity(dir)
}

// stopForRecovery stops (and, for a container, removes) the local etcd and
// closes the clients to it.
func (a *Agent) stopForRecovery(ctx context.Context) error {
	if err := a.stopAndForgetEtcd(ctx); err != nil {
		return fmt.Errorf("stop etcd before the recovery: %w", err)
	}
	return nil
}

// discoverySource is the configured discovery (built once per agent).
func (a *Agent) discoverySource() (discovery.Source, error) {
	if a.disc != nil {
		return a.disc, nil
	}
	if a.opts.Discovery != nil {
		return a.opts.Discovery, nil
	}
	return newDiscovery(a.cfg, a.log)
}

func hexID(id uint64) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprintf("%x", id)
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}
