// Package schedule lets the agents of a cluster share one snapshot per
// interval: the interval's slot goes to whichever agent first claims it (a
// put-if-absent transaction on a key bound to its lease, in the cluster
// itself), and the outcome is one record every agent reads for its status.
// An agent that dies holding a claim lets its lease expire; the slot is then
// still unhandled and the next agent to look claims it.
//
// Job (job.go) is the agent's snapshot job built on it: one round per Run
// (claim the slot, snapshot, retention, verification, the shared record),
// and the snapshot taken before a membership change (Job.BeforeChange).
package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/report"
)

// Keys of the schedule (declared in package keys).
const (
	ClaimKey  = keys.BackupClaim
	RecordKey = keys.BackupRecord
)

// ClaimTTL is how long a claim outlives an agent that died holding it.
const ClaimTTL = 30 * time.Second

// SlotOf numbers the interval t falls in: the same for every agent whose
// clock is within the interval.
func SlotOf(t time.Time, interval time.Duration) int64 {
	return t.UnixNano() / int64(interval)
}

// Due says whether slot still needs a snapshot, given the shared record.
func Due(rec report.Backup, slot int64) bool { return rec.Slot < slot }

// Protected names the snapshots retention must keep whatever their age: the
// newest verified one (Verified; from a record written before it existed,
// the newest verification when it succeeded), so failed verifications since
// (a transient S3 error, a damaged newer snapshot) never leave the stores
// without a snapshot known to restore.
func Protected(rec report.Backup) []string {
	var names []string
	if v := rec.Verified; v != nil && v.OK {
		names = append(names, v.Name)
	}
	if v := rec.Verification; v != nil && v.OK && !slices.Contains(names, v.Name) {
		names = append(names, v.Name)
	}
	return names
}

// Claim is a held slot. Release it when done; it also ends when the
// holder's process dies (lease).
type Claim struct {
	sess *concurrency.Session
	cli  *clientv3.Client
}

// TryClaim claims slot for holder if no other agent holds a claim and the
// record does not show the slot handled. ok is false when another agent was
// first.
func TryClaim(ctx context.Context, cli *clientv3.Client, slot int64, holder string) (*Claim, bool, error) {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(int(ClaimTTL.Seconds())), concurrency.WithContext(ctx))
	if err != nil {
		return nil, false, fmt.Errorf("snapshot claim session: %w", err)
	}
	val := holder + " slot " + strconv.FormatInt(slot, 10)
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(ClaimKey), "=", 0)).
		Then(clientv3.OpPut(ClaimKey, val, clientv3.WithLease(sess.Lease()))).
		Commit()
	if err != nil {
		_ = sess.Close()
		return nil, false, fmt.Errorf("claim snapshot slot: %w", err)
	}
	if !resp.Succeeded {
		_ = sess.Close()
		return nil, false, nil
	}
	// The claim is ours; a record written meanwhile may show the slot done.
	rec, err := Read(ctx, cli)
	if err != nil || !Due(rec, slot) {
		c := &Claim{sess: sess, cli: cli}
		c.Release()
		return nil, false, err
	}
	return &Claim{sess: sess, cli: cli}, true, nil
}

// Alive is false once the claim's lease ended (this process was frozen past
// ClaimTTL, say): another agent may hold the slot now.
func (c *Claim) Alive() bool {
	select {
	case <-c.sess.Done():
		return false
	default:
		return true
	}
}

// Release gives the claim up (revoking the lease deletes the key).
func (c *Claim) Release() {
	_ = c.sess.Close()
}

// Read returns the shared record; a cluster without one has the zero value.
func Read(ctx context.Context, cli *clientv3.Client) (report.Backup, error) {
	resp, err := cli.Get(ctx, RecordKey)
	if err != nil {
		return report.Backup{}, fmt.Errorf("read snapshot record: %w", err)
	}
	var rec report.Backup
	if len(resp.Kvs) == 0 {
		return rec, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return report.Backup{}, fmt.Errorf("snapshot record %s: %w", RecordKey, err)
	}
	return rec, nil
}

// Update applies change to the shared record atomically (retrying when
// another agent wrote it meanwhile).
func Update(ctx context.Context, cli *clientv3.Client, change func(*report.Backup)) error {
	for range 10 {
		resp, err := cli.Get(ctx, RecordKey)
		if err != nil {
			return fmt.Errorf("read snapshot record: %w", err)
		}
		var rec report.Backup
		var modRev int64
		if len(resp.Kvs) > 0 {
			modRev = resp.Kvs[0].ModRevision
			if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
				rec = report.Backup{} // unreadable: start over rather than block backups
			}
		}
		change(&rec)
		rec.LocalError = "" // per node, never shared
		b, _ := json.Marshal(rec)
		txn, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(RecordKey), "=", modRev)).
			Then(clientv3.OpPut(RecordKey, string(b))).
			Commit()
		if err != nil {
			return fmt.Errorf("write snapshot record: %w", err)
		}
		if txn.Succeeded {
			return nil
		}
	}
	return errors.New("write snapshot record: kept changing under us")
}
