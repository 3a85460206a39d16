package recovery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/node"
	"github.com/etcd-agent/etcd-agent/agent/refusal"
	"github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// Disaster recovery, the agent's side. `etcd-agent recover` writes a request
// file beside the data dir (RequestPath); the running agent's pass notices
// it, whatever stage it waits in (no quorum, a join that waits for one), and
// ends with Needed; the agent then rebuilds the cluster on this node
// (Job.Recover) and starts the pass again, which restarts the new member in
// place, and its ready stage finishes the recovery (Job.Finish). The agent,
// not the command, does the work: it owns the etcd it must stop (in-process
// when embedded), and a recovery interrupted by a crash resumes at its next
// start.

// Node is what the recovery job needs of its node.
type Node interface {
	node.Node
	node.Clients
	Requester
	// Retry runs step until it succeeds or ctx ends, with capped backoff,
	// saying what it waits for in the node's status.
	Retry(ctx context.Context, what string, step func(context.Context) error) error
	// StopEtcd stops (a container: removes) the local etcd and closes the
	// clients to it, before its data dir is replaced.
	StopEtcd(ctx context.Context) error
	// PublishEndpoints records the cluster's client URLs in the configured
	// discovery (best effort).
	PublishEndpoints(ctx context.Context, eps []string)
}

// Job is the agent's side of the recovery: it carries out a request
// (Recover), finishes it once the new member is healthy (Finish), and, as a
// round on its schedule (Run), reports a member that still serves a cluster
// a recovery replaced.
type Job struct {
	n Node

	mu sync.Mutex
	// recovering is a recovery whose new member is not healthy yet.
	recovering *recovering
	// lastReplacedReport is when a replaced-but-running cluster was last
	// reported (Run).
	lastReplacedReport time.Time
	// noQuorum is since when this agent has seen no quorum of its data's
	// cluster, which a recovery replaced (DecideAside).
	noQuorum noQuorum
	// lastAside is the last move-aside verdict logged.
	lastAside asideLog
}

// NewJob returns the recovery job of n.
func NewJob(n Node) *Job { return &Job{n: n} }

// Needed ends a lifecycle pass: a recovery was requested. The agent calls
// Recover with the request, then starts the pass again.
type Needed struct {
	Request Request
}

func (r *Needed) Error() string { return "recovery requested: from " + r.Request.Describe() }

// RequestPoll is how often the agent's job table looks for a recovery
// request.
const RequestPoll = 500 * time.Millisecond

// CheckRequest is the request watch's round: it ends the pass with a
// *Needed when a recovery request appears, whatever stage the pass waits in.
func (j *Job) CheckRequest(context.Context) error {
	if req, ok := Pending(j.n.Config().Node.DataDir); ok && req.State == Requested {
		j.n.Logger().Warn("recovery requested", "from", req.Describe())
		return &Needed{Request: req}
	}
	return nil
}

// ToResume is a request the agent must act on when a pass reaches the
// membership stage: a new one, one it was carrying out when it died, or one
// whose new member it started and must see healthy.
func (j *Job) ToResume() (Request, bool) {
	req, ok := Pending(j.n.Config().Node.DataDir)
	j.mu.Lock()
	starting := j.recovering != nil
	j.mu.Unlock()
	if !ok || (req.State == Starting && starting) {
		return Request{}, false
	}
	return req, true
}

// recovering is a recovery whose new member has not been healthy yet: the
// ready stage finishes it.
type recovering struct {
	req     Request
	rec     discovery.Recovery
	version int64 // of the registry record; -1: no registry
	book    discovery.RecoveryBook
	// moved: the new member's data is in place of the old.
	moved bool
}

// Recover carries out a recovery request. A refusal or a failure is written
// to the request (the command prints it) and the node goes on as before;
// only a cancelled ctx is returned.
func (j *Job) Recover(ctx context.Context, req Request) error {
	n := j.n
	dataDir := n.Config().Node.DataDir
	if req.RequestedAt.IsZero() {
		req.RequestedAt = n.Now()
	}
	if req.Token == "" {
		req.Token = NewToken(n.Config().Cluster.Name, req.RequestedAt)
	}
	req.State = Running
	progress := func(msg string) {
		req.Progress = append(req.Progress, Line{At: n.Now().UTC(), Msg: msg})
		if err := WriteRequest(dataDir, req); err != nil {
			n.Logger().Warn("write recovery progress", "err", err)
		}
		n.Logger().Info("recovery", "step", msg)
		n.SetStatus(report.PhaseRecovering, "recovering the cluster: "+msg)
	}
	progress("recovery from " + req.Describe() + " picked up by the agent (pid " + fmt.Sprint(os.Getpid()) + ")")
	r := &recovering{version: -1}
	err := j.rebuild(ctx, &req, r, progress)
	if err != nil {
		if r.book != nil && r.rec.State == discovery.RecoveryStarted && !r.moved {
			// The new member never ran: its cluster replaces nothing.
			r.rec.State = discovery.RecoveryFailed
			if werr := j.writeRecord(context.WithoutCancel(ctx), r); werr != nil {
				n.Logger().Warn("mark the recovery record failed", "err", werr)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		req.State, req.Error = Failed, err.Error()
		if refusal.Is(err) {
			req.State = Refused
		}
		if req.State == Refused {
			progress("recovery refused; nothing was changed")
		} else {
			progress("recovery failed; the node goes on as before (its data is kept)")
		}
		n.Recorder().AddDecision(report.Action("recover-"+string(req.State)), err.Error())
		n.Logger().Error("recovery not done", "state", req.State, "err", err)
		return nil
	}
	req.State = Starting
	if err := WriteRequest(dataDir, req); err != nil {
		n.Logger().Warn("write recovery progress", "err", err)
	}
	r.req = req
	j.mu.Lock()
	j.recovering = r
	j.mu.Unlock()
	return nil
}

// rebuild checks that the quorum is gone, claims the recovery in the
// registry, stops etcd, builds the new member's data and moves it in place
// of the old data dir (which is kept, moved aside). A request that was
// running when the agent died resumes: once the new member's data is in
// place (or only waits to be moved in), it is not built again.
func (j *Job) rebuild(ctx context.Context, req *Request, r *recovering, progress func(string)) error {
	n := j.n
	dataDir := n.Config().Node.DataDir
	self := n.Identity().Name
	work := WorkDir(dataDir)
	newDir := filepath.Join(work, "new")
	dataID, err := memberIdentity(dataDir)
	if err != nil {
		return err
	}
	if newID, _ := memberIdentity(newDir); req.ClusterID != "" && hexID(dataID.ClusterID) != req.ClusterID && hexID(newID.ClusterID) == req.ClusterID {
		// Died after the new member's data was built and recorded (the
		// registry names its cluster from then on, so the checks below
		// would refuse this node's own recovery), before it was moved in:
		// finish the move.
		if err := j.moveIn(dataID, newDir, req.ClusterID, progress); err != nil {
			return err
		}
		dataID = newID
	}
	resumed := req.ClusterID != "" && hexID(dataID.ClusterID) == req.ClusterID
	if req.From == FromMember && dataID.ClusterID == 0 && !resumed {
		return refusal.Errorf("%s holds no etcd member: there is nothing to recover from on this node; run recover --from-member on a node whose data survived, or recover --from-snapshot", dataDir)
	}

	src, err := n.Discovery()
	if err != nil {
		return err
	}
	r.req = *req
	if resumed {
		j.resumeRecord(ctx, src, r)
		progress("the new member's data is already in place (resuming)")
		return nil
	}

	progress("checking that no quorum answers")
	facts := quorumFacts(ctx, n, dataID.ClusterID)
	if err := Refusal(facts); err != nil {
		return err
	}
	progress(describeProbes(facts))
	if req.From == FromMember {
		if s, _ := j.SupersededByRegistry(ctx); s != nil {
			return refuseSuperseded(s)
		}
		progress("asking every member's agent how far its WAL reaches")
		wf, err := walFacts(ctx, n, req.Lost, req.Force)
		if err != nil {
			return err
		}
		progress(describeWALs(wf))
		if err := WALRefusal(wf); err != nil {
			return err
		}
	}

	known := []string{hexID(dataID.ClusterID)}
	if fb, ok := src.(discovery.FormationBook); ok {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := n.Retry(rctx, "reading the formation record", func(ctx context.Context) error {
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
		if err := j.claim(ctx, r, known, facts.Asked()); err != nil {
			return err
		}
		progress(fmt.Sprintf("recorded in discovery: %s", r.rec))
	} else {
		r.rec, _ = Claim(ClaimFacts{Self: self, Request: *req, Known: known, Now: n.Now()})
		progress("static discovery keeps no registry: the recovery is recorded in the new cluster itself, where old members that reach it read it")
	}
	progress("stopping the local etcd")
	if err := n.StopEtcd(ctx); err != nil {
		return fmt.Errorf("stop etcd before the recovery: %w", err)
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", work, err)
	}
	snapFile, err := j.snapshot(ctx, req, r, dataID, work, progress)
	if err != nil {
		return err
	}

	if err := os.RemoveAll(newDir); err != nil { // an earlier attempt's output
		return err
	}
	peer := n.Member().PeerURL()
	progress(fmt.Sprintf("restoring into a new cluster (token %s, member %s=%s), revision bumped by %d and marked compacted", req.Token, self, peer, backup.DefaultRevisionBump))
	if err := backup.Restore(ctx, snapFile, backup.RestoreOptions{DataDir: newDir, Name: self, PeerURL: peer, ClusterToken: req.Token, Logger: n.Logger()}); err != nil {
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
		if err := j.writeRecord(ctx, r); err != nil {
			return err
		}
	}
	req.ClusterID, req.Replaced = r.rec.ClusterID, r.rec.Replaced
	progress(fmt.Sprintf("new cluster %s, member %x", r.rec.ClusterID, newID.MemberID))

	if err := j.moveIn(dataID, newDir, fmt.Sprintf("%s (generation %d)", r.rec.ClusterID, r.rec.Generation), progress); err != nil {
		return err
	}
	r.moved = true
	progress("starting the new cluster's first member")
	n.Recorder().AddDecision(report.ActionRecover, fmt.Sprintf("new cluster %s from %s (%s)", r.rec.ClusterID, req.Describe(), r.rec))
	return nil
}

// moveIn puts the new member's data (newDir) in place of the data dir: the
// old member's data (old: its identity) is kept, moved aside; the old
// cluster's endpoints and the work dir go.
func (j *Job) moveIn(old datadir.Identity, newDir, newCluster string, progress func(string)) error {
	n := j.n
	dataDir := n.Config().Node.DataDir
	if old.ClusterID != 0 {
		moved, err := datadir.MoveAside(dataDir, "replaced by the recovery into cluster "+newCluster, n.Now())
		if err != nil {
			return err
		}
		progress("old data dir kept at " + moved)
		n.Recorder().AddDecision(report.ActionMoveAside, "replaced by the recovery into cluster "+newCluster+"; data kept at "+moved)
	} else if err := os.RemoveAll(dataDir); err != nil { // no member in it
		return err
	}
	if err := os.Rename(newDir, dataDir); err != nil {
		return fmt.Errorf("move the new member's data into %s: %w", dataDir, err)
	}
	// The old cluster's endpoints are of no use to the new one.
	_ = sidefile.RemoveEndpoints(dataDir)
	if err := os.RemoveAll(WorkDir(dataDir)); err != nil {
		n.Logger().Warn("remove the recovery's work dir", "dir", WorkDir(dataDir), "err", err)
	}
	return nil
}

// snapshot makes or fetches the snapshot the new member is restored from, in
// work.
func (j *Job) snapshot(ctx context.Context, req *Request, r *recovering, dataID datadir.Identity, work string, progress func(string)) (string, error) {
	n := j.n
	switch req.From {
	case FromMember:
		progress(fmt.Sprintf("applying every entry of member %x's WAL in a throw-away copy started alone, then taking a snapshot", dataID.MemberID))
		member, err := n.Member().EmbedConfig(n.Logger())
		if err != nil {
			return "", err
		}
		ms, err := SnapshotFromMember(ctx, n.Config().Node.DataDir, work, member, n.Logger())
		if err != nil {
			return "", fmt.Errorf("snapshot this member's data: %w", err)
		}
		kept := ""
		if ms.LastIndex > ms.WALCommit {
			kept = fmt.Sprintf("; %d entries past the commit index this member knew (%d) kept", ms.LastIndex-ms.WALCommit, ms.WALCommit)
		}
		progress(fmt.Sprintf("snapshot of member %x at revision %d (raft index %d%s)", ms.MemberID, ms.Revision, ms.LastIndex, kept))
		return ms.Path, nil
	case FromSnapshot:
		file := filepath.Join(work, "fetched.db")
		progress("fetching snapshot " + req.Snapshot)
		// The configured snapshot stores (backup.dir, backup.s3); a FILE
		// or s3:// reference needs none.
		srcs, err := backup.OpenSources(ctx, n.Config())
		if err != nil {
			return "", fmt.Errorf("open the snapshot stores: %w", err)
		}
		srcs.AllowPartial = req.AllowPartial
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
