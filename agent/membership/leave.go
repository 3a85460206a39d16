package membership

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/cluster"
	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/agent/refusal"
	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// Timing of a leave.
const (
	// leaveLockWait bounds the wait for the membership lock.
	leaveLockWait = 30 * time.Second
	// leaveConfirmWait bounds the wait until the other members no longer
	// list the removed member.
	leaveConfirmWait = 30 * time.Second
	// leaveStopWait is how long Leave waits for the removed member's etcd to
	// stop by itself (etcd shuts down once it learns it was removed).
	leaveStopWait = 60 * time.Second
)

// Leave removes this node's member from the cluster (scale-down,
// decommission) and wipes its data only after the removal is committed;
// progress is told each step (nil: nothing is told).
//
// Every survey must come from the cluster this node's data belongs to (the
// cluster ID in its WAL, or in the marker once the data is wiped): another
// cluster answering at a recorded address is refused, with both IDs, before
// anything is removed or wiped.
//
// Under the membership lock, and only if the remaining voters keep quorum,
// it writes the leave marker, so no agent restarts etcd or joins again from
// here; after the snapshot before the change it checks quorum again on a
// fresh survey (a refusal then takes back the marker it wrote), hands
// leadership to another healthy voter when the local member leads, and
// checks the lock; then it removes the member, confirms the removal through the
// other members, stops the local etcd (through the node's runtime; with
// none, a running agent owns etcd and it stops by itself on removal), wipes
// the data dir and marks the node as left. An interrupted Leave can be run
// again: it finishes what is left.
//
// guard (nil: none) is checked on both surveys alongside the quorum; its
// refusal is a *DeferredError, with the marker taken back as for a quorum
// refusal. An interrupted leave (the member already gone) is finished
// without it.
func (j *Job) Leave(ctx context.Context, guard LeaveGuard, progress func(string)) error {
	if progress == nil {
		progress = func(string) {}
	}
	dataDir := j.dataDir()
	self := j.self()
	selfClient := j.selfClientURL()
	if m, ok := sidefile.ReadLeaveMarker(dataDir); ok && m.State == sidefile.Left {
		progress("already left: " + m.String())
		return nil
	}

	eps := append([]string{selfClient}, sidefile.ReadEndpoints(dataDir)...)
	cli, err := j.n.Dial(slices.Compact(eps))
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	defer cli.Close()
	progress("taking the membership lock")
	lock, err := cluster.TakeLock(ctx, cli, leaveLockWait, j.n.Logger())
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	unlock := sync.OnceFunc(lock.Release)
	defer unlock()

	local, err := localCluster(dataDir)
	if err != nil {
		return err
	}
	me, facts, err := j.leaveFacts(ctx, cli, self, local)
	if err != nil {
		return err
	}
	memberID := ""
	if me != nil {
		if err := leaveAllowed(me.ID, facts.Members, guard); err != nil {
			return err
		}
		id := me.ID
		memberID = fmt.Sprintf("%x", id)
		_, hadMarker := sidefile.ReadLeaveMarker(dataDir)
		now := j.n.Now().UTC()
		if err := sidefile.WriteLeaveMarker(dataDir, sidefile.LeaveMarker{State: sidefile.Leaving, Member: self.Name, MemberID: memberID,
			ClusterID: fmt.Sprintf("%x", facts.ClusterID), At: now,
			Note: fmt.Sprintf("leaving since %s: removing member %s (%x)", now.Format(time.RFC3339), self.Name, id)}); err != nil {
			return fmt.Errorf("write leave marker: %w", err)
		}
		j.n.SnapshotBeforeChange(ctx, cli, "removing member "+self.Name+" (leave)")
		// The snapshot may have taken minutes: survey and check again.
		if me, facts, err = j.leaveFacts(ctx, cli, self, local); err != nil {
			return err
		}
		if me == nil || me.ID != id {
			return fmt.Errorf("leave: member %s (%x) left the member list during the snapshot before its removal: run leave again to finish", self.Name, id)
		}
		if err := leaveAllowed(id, facts.Members, guard); err != nil {
			if !hadMarker {
				// Nothing was removed: the node stays as it was.
				if err := sidefile.RemoveLeaveMarker(dataDir); err != nil {
					j.n.Logger().Warn("take back the leave marker", "err", err)
				}
			}
			return err
		}
		j.handOverLeadership(ctx, selfClient, id, facts.Members, progress)
		if err := lock.Check(ctx); err != nil {
			return fmt.Errorf("leave: %w (run leave again to retry)", err)
		}
		// Clients stop being sent here before the member goes; a failure
		// does not hold the leave: the leader's agent removes the records of
		// a removed member (and status shows why they were not withdrawn).
		if msg, err := j.n.WithdrawClientRecords(ctx, self.Name, selfClient); err != nil {
			j.n.Logger().Warn("client DNS records not withdrawn before leaving", "err", err)
			progress("client DNS records not withdrawn (the leader's agent removes them once the member is gone): " + err.Error())
		} else if msg != "" {
			progress(msg)
		}
		progress(fmt.Sprintf("removing member %s (%x)", self.Name, id))
		if err := cluster.RemoveMember(ctx, cli, id, progress); err != nil {
			return fmt.Errorf("leave: remove member %x: %w (run leave again to retry)", id, err)
		}
		if err := cluster.ConfirmRemoved(ctx, cli, id, leaveConfirmWait); err != nil {
			return fmt.Errorf("leave: removal of %x not confirmed (run leave again): %w", id, err)
		}
		j.forgetHeartbeat(ctx, cli, id)
		j.PublishEndpoints(ctx, cli.Endpoints())
		j.n.Logger().Warn("left the cluster", "member", self.Name, "id", memberID)
		progress("removal committed")
	} else {
		m, ok := sidefile.ReadLeaveMarker(dataDir)
		if !ok {
			return fmt.Errorf("leave: this node (%s, %s) is not a member of the cluster at %s", self.Name, self.PeerURL, strings.Join(cli.Endpoints(), ","))
		}
		memberID = m.MemberID
		progress("member already removed by an earlier leave; finishing")
	}
	unlock()

	if err := j.stopRemovedEtcd(ctx, selfClient, progress); err != nil {
		return err
	}
	if err := os.RemoveAll(dataDir); err != nil {
		return fmt.Errorf("leave: wipe data dir %s: %w", dataDir, err)
	}
	_ = sidefile.RemoveEndpoints(dataDir)
	progress("data dir " + dataDir + " wiped")
	now := j.n.Now().UTC()
	if err := sidefile.WriteLeaveMarker(dataDir, sidefile.LeaveMarker{State: sidefile.Left, Member: self.Name, MemberID: memberID, At: now,
		Note: fmt.Sprintf("left at %s as member %s; delete this file to let the node join again", now.Format(time.RFC3339), self.Name)}); err != nil {
		return fmt.Errorf("write leave marker: %w", err)
	}
	return nil
}

// leaveAllowed is LeaveCheck's quorum rule (a refusal: the command line
// exits 3), then guard's (a *DeferredError: a wait, retried by the fleet
// job).
func leaveAllowed(id uint64, members []ClusterMember, guard LeaveGuard) error {
	if err := LeaveCheck(id, members); err != nil {
		return fmt.Errorf("leave: %w", &refusal.Error{Reason: err})
	}
	if guard != nil {
		if err := guard(id, members); err != nil {
			return &DeferredError{Err: err}
		}
	}
	return nil
}

// leaveFacts surveys the cluster and finds this node's member in it (nil
// when the member list does not hold it). It refuses a cluster other than
// local, the one this node's data belongs to: its member list says nothing
// about this node's member, and acting on it would remove a stranger or
// wipe data on a stranger's word.
func (j *Job) leaveFacts(ctx context.Context, cli *clientv3.Client, self Member, local localID) (*ClusterMember, JoinFacts, error) {
	facts, err := j.Facts(ctx, cli)
	if err != nil {
		return nil, JoinFacts{}, fmt.Errorf("leave: %w", err)
	}
	if local.known && facts.ClusterID != local.cluster {
		return nil, facts, fmt.Errorf("leave: %w", refusal.Errorf("this node's member belongs to cluster %x (%s), but the cluster answering at %s is %x: "+
			"not removing a member or wiping data on another cluster's word (a recovered cluster, or another cluster at an address this node knew); "+
			"nothing was changed: check %s and the cluster this node belongs to",
			local.cluster, local.from, strings.Join(cli.Endpoints(), ","), facts.ClusterID, sidefile.EndpointsPath(j.dataDir())))
	}
	var me *ClusterMember
	for i, m := range facts.Members {
		if slices.Contains(m.PeerURLs, self.PeerURL) {
			me = &facts.Members[i]
		}
	}
	return me, facts, nil
}

// localID is the cluster this node's member belongs to, as its data (or,
// once the data is wiped, the leave marker) says.
type localID struct {
	cluster uint64
	known   bool
	from    string // where it was read, for the refusal
}

// localCluster reads the cluster ID of the member in dataDir (the WAL's
// metadata), or the one the leave marker recorded once the data is gone.
// Data whose cluster cannot be read is not wiped: an error.
func localCluster(dataDir string) (localID, error) {
	has, err := datadir.HasMember(dataDir)
	if err != nil {
		return localID{}, fmt.Errorf("leave: %w", err)
	}
	if has {
		id, err := datadir.ReadIdentity(dataDir)
		if err != nil {
			return localID{}, fmt.Errorf("leave: %w", refusal.Errorf("cannot tell which cluster the data in %s belongs to, so it is not wiped: %w", dataDir, err))
		}
		return localID{cluster: id.ClusterID, known: true, from: fmt.Sprintf("member %x in %s", id.MemberID, dataDir)}, nil
	}
	if m, ok := sidefile.ReadLeaveMarker(dataDir); ok && m.ClusterID != "" {
		if id, err := strconv.ParseUint(m.ClusterID, 16, 64); err == nil {
			return localID{cluster: id, known: true, from: "recorded in " + sidefile.LeaveMarkerPath(dataDir)}, nil
		}
	}
	return localID{}, nil // no data to wipe, no cluster recorded
}

// stopRemovedEtcd makes sure the local etcd no longer runs: it stops it
// through the runtime when this process has one for it, and waits until
// nothing answers at the member's client URL (etcd also stops by itself once
// it learns it was removed).
func (j *Job) stopRemovedEtcd(ctx context.Context, clientURL string, progress func(string)) error {
	if rt := j.n.EtcdRuntime(); rt != nil {
		progress("stopping local etcd (" + rt.Name() + ")")
		sctx, cancel := context.WithTimeout(ctx, j.n.Config().Podman.StopTimeout.D()+10*time.Second)
		defer cancel()
		// A container is deleted too: the member is gone for good.
		if err := rt.Remove(sctx); err != nil {
			return fmt.Errorf("leave: stop local etcd: %w", err)
		}
	}
	progress("waiting for the local etcd to stop")
	// A TCP dial, not a Status call: etcd 3.7 panics on a Status call that
	// arrives between its removal and its stop.
	err := cluster.PollUntil(ctx, leaveStopWait, func(ctx context.Context) (bool, error) {
		return !cluster.Dialable(ctx, clientURL), nil
	})
	if err != nil {
		return fmt.Errorf("leave: the removed member still answers at %s; stop it, then run leave again to wipe its data: %w", clientURL, err)
	}
	return nil
}

// Survey finds this node's member (0: none) in a fresh survey of its
// cluster, reached through the local member and the endpoints recorded
// beside the data dir (the fleet job's view before it leaves on a notice).
func (j *Job) Survey(ctx context.Context) (uint64, []ClusterMember, error) {
	eps := append([]string{j.selfClientURL()}, sidefile.ReadEndpoints(j.dataDir())...)
	cli, err := j.n.Dial(slices.Compact(eps))
	if err != nil {
		return 0, nil, err
	}
	defer cli.Close()
	facts, err := j.Facts(ctx, cli)
	if err != nil {
		return 0, nil, err
	}
	self := j.self()
	for _, m := range facts.Members {
		if slices.Contains(m.PeerURLs, self.PeerURL) {
			return m.ID, facts.Members, nil
		}
	}
	return 0, facts.Members, nil
}

// handOverLeadership moves leadership from the local member, when it
// leads, to a healthy voter, so the removal costs no election: a removed
// leader steps down only once the change is applied, and the others wait
// an election timeout before they elect another. A failure is logged:
// the removal still works, one election later.
func (j *Job) handOverLeadership(ctx context.Context, selfClient string, id uint64, members []ClusterMember, progress func(string)) {
	var to uint64
	for _, m := range members {
		if m.ID != id && !m.IsLearner && m.Healthy {
			to = m.ID
			break
		}
	}
	if to == 0 {
		return
	}
	cli, err := j.n.Dial([]string{selfClient})
	if err != nil {
		j.n.Logger().Warn("leave: hand leadership over", "err", err)
		return
	}
	defer cli.Close()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	st, err := cli.Status(sctx, selfClient)
	cancel()
	if err != nil || st.Leader != id {
		return // not the leader (or it does not say): nothing to hand over
	}
	progress(fmt.Sprintf("handing leadership over to %x", to))
	if err := cluster.MoveLeader(ctx, cli, to, 10*time.Second); err != nil {
		j.n.Logger().Warn("leave: hand leadership over", "to", fmt.Sprintf("%x", to), "err", err)
		return
	}
	j.n.Logger().Info("leave: handed leadership over", "to", fmt.Sprintf("%x", to))
}
