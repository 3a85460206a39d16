package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/membership"
	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// leaveStopWait is how long Leave waits for the removed member's etcd to
// stop by itself (etcd shuts down once it learns it was removed).
const leaveStopWait = 60 * time.Second

// Leave removes this node's member from the cluster (scale-down,
// decommission) and wipes its data only after the removal is committed.
//
// It writes the leave marker first, so no agent restarts etcd or joins again
// from here; then, under the membership lock and only if the remaining voters
// keep quorum, removes the member, confirms the removal through the other
// members, stops the local etcd (Options.Runtime; nil when a running agent
// owns it, in which case etcd stops by itself on removal), and wipes the data
// dir. An interrupted Leave can be run again: it finishes what is left.
func (a *Agent) Leave(ctx context.Context, progress func(string)) error {
	if progress == nil {
		progress = func(string) {}
	}
	if err := a.resolveIdentity(ctx); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	self := a.self()
	selfClient := a.specBase().ClientURL()
	marker := LeftMarkerPath(a.cfg.Node.DataDir)
	if _, what := leftMarker(a.cfg.Node.DataDir); strings.HasPrefix(what, "left") {
		progress("already left: " + strings.TrimSpace(what))
		return nil
	}

	eps := append([]string{selfClient}, readEndpoints(a.cfg.Node.DataDir)...)
	cli, err := a.newClusterClient(slices.Compact(eps))
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	defer cli.Close()
	progress("taking the membership lock")
	lock, err := lockMembership(ctx, cli, 30*time.Second)
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	unlock := sync.OnceFunc(func() { lock.release(a.log) })
	defer unlock()

	facts, err := a.gatherMembers(ctx, cli, map[uint64]membership.Outage{})
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	var me *membership.ClusterMember
	for i, m := range facts.Members {
		if slices.Contains(m.PeerURLs, self.PeerURL) {
			me = &facts.Members[i]
		}
	}
	if me != nil {
		if err := membership.LeaveCheck(me.ID, facts.Members); err != nil {
			return fmt.Errorf("leave: refused: %w", err)
		}
		if err := writeMarker(marker, fmt.Sprintf("leaving since %s: removing member %s (%x)", a.now().UTC().Format(time.RFC3339), self.Name, me.ID)); err != nil {
			return err
		}
		a.snapshotBeforeChange(ctx, cli, "removing member "+self.Name+" (leave)")
		progress(fmt.Sprintf("removing member %s (%x)", self.Name, me.ID))
		if err := a.removeMember(ctx, cli, me.ID, progress); err != nil {
			return fmt.Errorf("leave: remove member %x: %w (run leave again to retry)", me.ID, err)
		}
		if err := a.confirmRemoved(ctx, cli, me.ID); err != nil {
			return err
		}
		a.forgetHeartbeat(ctx, cli, me.ID)
		if src, err := newDiscovery(a.cfg, a.log); err == nil {
			a.disc = src
			a.publishEndpoints(ctx, cli.Endpoints())
		}
		a.log.Warn("left the cluster", "member", self.Name, "id", fmt.Sprintf("%x", me.ID))
		progress("removal committed")
	} else {
		if left, _ := leftMarker(a.cfg.Node.DataDir); !left {
			return fmt.Errorf("leave: this node (%s, %s) is not a member of the cluster at %s", self.Name, self.PeerURL, strings.Join(cli.Endpoints(), ","))
		}
		progress("member already removed by an earlier leave; finishing")
	}
	unlock()

	if err := a.stopRemovedEtcd(ctx, selfClient, progress); err != nil {
		return err
	}
	if err := os.RemoveAll(a.cfg.Node.DataDir); err != nil {
		return fmt.Errorf("leave: wipe data dir %s: %w", a.cfg.Node.DataDir, err)
	}
	_ = os.Remove(endpointsPath(a.cfg.Node.DataDir))
	progress("data dir " + a.cfg.Node.DataDir + " wiped")
	return writeMarker(marker, fmt.Sprintf("left at %s as member %s; delete this file to let the node join again", a.now().UTC().Format(time.RFC3339), self.Name))
}

// retryUnhealthy runs a membership change, retrying for up to a minute
// while etcd's strict reconfiguration check refuses it (ErrUnhealthy): a
// member that joined, or a removal that was applied, a moment ago has
// connections too recent to count toward quorum yet. waiting is told each
// time it waits.
func retryUnhealthy(ctx context.Context, change func(context.Context) error, waiting func(error)) error {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 5 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := change(cctx)
		cancel()
		if err == nil || !errors.Is(err, rpctypes.ErrUnhealthy) || time.Now().After(deadline) {
			return err
		}
		waiting(err)
		if err := sleepCtx(ctx, bo.Next()); err != nil {
			return err
		}
	}
}

// removeMember removes id through cli (see retryUnhealthy).
func (a *Agent) removeMember(ctx context.Context, cli *clientv3.Client, id uint64, progress func(string)) error {
	return retryUnhealthy(ctx, func(ctx context.Context) error {
		_, err := cli.MemberRemove(ctx, id)
		return err
	}, func(err error) {
		progress(fmt.Sprintf("etcd refuses the removal of %x until every member has been connected for a while (%v); retrying", id, err))
	})
}

// confirmRemoved waits until the other members' (linearizable) member list
// no longer holds id: the removal is committed.
func (a *Agent) confirmRemoved(ctx context.Context, cli *clientv3.Client, id uint64) error {
	err := a.pollUntil(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		list, err := cli.MemberList(ctx)
		if err != nil {
			return false, err
		}
		for _, m := range list.Members {
			if m.ID == id {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("leave: removal of %x not confirmed (run leave again): %w", id, err)
	}
	return nil
}

// stopRemovedEtcd makes sure the local etcd no longer runs: it stops it
// through the runtime when this process has one for it, and waits until
// nothing answers at the member's client URL (etcd also stops by itself once
// it learns it was removed).
func (a *Agent) stopRemovedEtcd(ctx context.Context, clientURL string, progress func(string)) error {
	if a.opts.Runtime != nil {
		progress("stopping local etcd (" + a.opts.Runtime.Name() + ")")
		sctx, cancel := context.WithTimeout(ctx, a.cfg.Podman.StopTimeout.D()+10*time.Second)
		defer cancel()
		// A container is deleted too: the member is gone for good.
		if err := a.opts.Runtime.Remove(sctx); err != nil {
			return fmt.Errorf("leave: stop local etcd: %w", err)
		}
	}
	progress("waiting for the local etcd to stop")
	// A TCP dial, not a Status call: etcd 3.7 panics on a Status call that
	// arrives between its removal and its stop.
	err := a.pollUntil(ctx, leaveStopWait, func(ctx context.Context) (bool, error) {
		return !dialable(ctx, clientURL), nil
	})
	if err != nil {
		return fmt.Errorf("leave: the removed member still answers at %s; stop it, then run leave again to wipe its data: %w", clientURL, err)
	}
	return nil
}

// pollUntil calls check every half second until it reports done, ctx ends or
// limit passes.
func (a *Agent) pollUntil(ctx context.Context, limit time.Duration, check func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		done, err := check(cctx)
		cancel()
		if done {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			if last == nil {
				last = errors.New("timed out")
			}
			return fmt.Errorf("after %s: %w", limit, last)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

func writeMarker(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o644); err != nil {
		return fmt.Errorf("write leave marker: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write leave marker: %w", err)
	}
	return nil
}
