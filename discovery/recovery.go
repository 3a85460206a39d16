package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The recovery record: after a quorum was lost for good, `etcd-agent recover`
// rebuilds the cluster on one node with a new cluster ID and records it
// beside the formation records:
//
//	<registry>/_agent/recovery   (v2: <url>/_agent/recovery)
//
// It names the new cluster and every cluster ID it replaced, so a node
// holding data of a replaced cluster moves that data aside and joins the new
// one instead of restarting a member of a cluster that is gone. Unlike the
// formation records it is overwritten, by compare-and-swap only: one
// recovery at a time, each a generation higher than the last.

// Recovery states.
const (
	// RecoveryStarted: a node claimed the recovery; ClusterID is set once
	// the new member's data is written (before its etcd first starts).
	RecoveryStarted = "started"
	// RecoveryDone: the new cluster was healthy.
	RecoveryDone = "done"
	// RecoveryFailed: the recovery stopped before the new member's data
	// was in place; the cluster it names never ran.
	RecoveryFailed = "failed"
)

// Recovery is the recovery record.
type Recovery struct {
	Generation int      `json:"generation"`
	State      string   `json:"state"`
	By         string   `json:"by"`   // member name of the recovering node
	From       string   `json:"from"` // "member etcd-10-0-1-5" or "snapshot s3://…"
	Token      string   `json:"token"`
	ClusterID  string   `json:"clusterID,omitempty"` // hex; the new cluster
	Replaced   []string `json:"replaced"`            // hex cluster IDs this one replaces
	// Endpoints are the new cluster's client URLs: set when it is first
	// healthy, kept in step by each member that joins it. A later
	// recovery must find no quorum there (or name this generation with
	// --replaces) before it replaces this cluster.
	Endpoints []string  `json:"endpoints,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	DoneAt    time.Time `json:"doneAt,omitzero"`
}

func (r Recovery) String() string {
	s := fmt.Sprintf("recovery %d by %s from %s (%s since %s", r.Generation, r.By, r.From, r.State, r.StartedAt.UTC().Format(time.RFC3339))
	if r.ClusterID != "" {
		s += ", new cluster " + r.ClusterID
	}
	return s + ")"
}

// Replaces reports whether clusterID (hex) is one of the clusters this
// recovery replaced. A recovery replaces nothing until its new cluster
// exists (ClusterID set), nor once it failed.
func (r Recovery) Replaces(clusterID string) bool {
	return r.State != RecoveryFailed && r.ClusterID != "" &&
		clusterID != "" && clusterID != r.ClusterID && slices.Contains(r.Replaced, clusterID)
}

// RecoveryBook is a registry that keeps the recovery record (V3, V2). Each
// method is one bounded network step; callers retry.
type RecoveryBook interface {
	// Recovery reads the record; nil when there is none. version is what
	// SwapRecovery compares against.
	Recovery(ctx context.Context) (rec *Recovery, version int64, err error)
	// SwapRecovery writes rec if the record is still at version (0: absent).
	// ErrRecoveryChanged when it is not.
	SwapRecovery(ctx context.Context, rec Recovery, version int64) error
}

var (
	_ RecoveryBook = (*V3)(nil)
	_ RecoveryBook = (*V2)(nil)
)

// ErrRecoveryChanged: another node wrote the recovery record in between.
var ErrRecoveryChanged = errors.New("the recovery record changed in between (another node is recovering the cluster?)")

func recoveryKey(token string) string { return formationPrefix(token) + "recovery" }

// Recovery reads <registry>/_agent/recovery; version is its mod revision.
func (d *V3) Recovery(ctx context.Context) (*Recovery, int64, error) {
	if err := checkToken(d.Token); err != nil {
		return nil, 0, err
	}
	var rec *Recovery
	var version int64
	err := d.request(ctx, func(ctx context.Context, c *clientv3.Client) error {
		resp, err := c.Get(ctx, recoveryKey(d.Token))
		if err != nil {
			return fmt.Errorf("read the recovery record of token %s: %w", d.Token, err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		version = resp.Kvs[0].ModRevision
		rec, err = parseRecovery(resp.Kvs[0].Value)
		return err
	})
	return rec, version, err
}

// SwapRecovery writes the record if its mod revision is still version.
func (d *V3) SwapRecovery(ctx context.Context, rec Recovery, version int64) error {
	if err := checkToken(d.Token); err != nil {
		return err
	}
	key := recoveryKey(d.Token)
	b, _ := json.Marshal(rec)
	return d.request(ctx, func(ctx context.Context, c *clientv3.Client) error {
		resp, err := c.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
			Then(clientv3.OpPut(key, string(b))).
			Commit()
		if err != nil {
			return fmt.Errorf("write the recovery record of token %s: %w", d.Token, err)
		}
		if !resp.Succeeded {
			return ErrRecoveryChanged
		}
		return nil
	})
}

// Recovery reads <url>/_agent/recovery; version is its modifiedIndex.
func (d *V2) Recovery(ctx context.Context) (*Recovery, int64, error) {
	var rec *Recovery
	var version int64
	err := d.request(ctx, func(ctx context.Context, c *v2Client) error {
		resp, err := c.do(ctx, http.MethodGet, "_agent/recovery", nil, nil)
		if isV2Code(err, v2KeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the recovery record at %s: %w", c.base.Redacted(), err)
		}
		if resp.Node == nil {
			return fmt.Errorf("read the recovery record at %s: answer has no node", c.base.Redacted())
		}
		version = resp.Node.ModifiedIndex
		rec, err = parseRecovery([]byte(resp.Node.Value))
		return err
	})
	return rec, version, err
}

// SwapRecovery writes the record if its modifiedIndex is still version
// (prevIndex), or, for version 0, if it does not exist (prevExist=false).
func (d *V2) SwapRecovery(ctx context.Context, rec Recovery, version int64) error {
	b, _ := json.Marshal(rec)
	q := url.Values{"prevExist": {"false"}}
	if version != 0 {
		q = url.Values{"prevIndex": {strconv.FormatInt(version, 10)}}
	}
	return d.request(ctx, func(ctx context.Context, c *v2Client) error {
		_, err := c.do(ctx, http.MethodPut, "_agent/recovery", q, url.Values{"value": {string(b)}})
		switch {
		case isV2Code(err, v2NodeExist), isV2Code(err, v2TestFailed), isV2Code(err, v2KeyNotFound):
			return ErrRecoveryChanged
		case err != nil:
			return fmt.Errorf("write the recovery record at %s: %w", c.base.Redacted(), err)
		}
		return nil
	})
}

// v2TestFailed is the keys API's answer to a failed prevIndex comparison.
const v2TestFailed = 101

// parseRecovery decodes a record. An unreadable record is an error, never
// "no record": it may name the cluster that replaced ours.
func parseRecovery(b []byte) (*Recovery, error) {
	var r Recovery
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("unreadable recovery record %.120q: %w", b, err)
	}
	return &r, nil
}
