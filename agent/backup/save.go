package backup

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/discovery"
)

// SaveOptions says which member to snapshot and how to label it.
type SaveOptions struct {
	// Client reaches the member to snapshot: its Endpoints()[0] is the
	// member that streams the snapshot (use a client with one endpoint).
	Client *clientv3.Client
	// Dir receives the file (a temp file, renamed by the caller). It is
	// where the disk space is needed.
	Dir string
	// Cluster is the cluster's configured name; TakenBy this node's member
	// name; Reason why the snapshot is taken.
	Cluster string
	TakenBy string
	Reason  string
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// Logger receives how long each step took (debug). Zero: discarded.
	Logger *slog.Logger
}

// etcdTrailer is the sha256 etcd's Snapshot API appends to the database.
const etcdTrailer = sha256.Size

// Save streams a snapshot of the member opts.Client reaches into a temp file
// in opts.Dir, hashing it on the way, and describes it: revision (from the
// file), the member's key count and HashKV at that revision, the member
// list, versions. It returns the file's path (the caller stores it and
// removes it) and the metadata. A stream cut short leaves no file.
func Save(ctx context.Context, opts SaveOptions) (file string, m Meta, err error) {
	cli := opts.Client
	if cli == nil || len(cli.Endpoints()) == 0 {
		return "", Meta{}, errors.New("save snapshot: a client with the member's endpoint is required")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	endpoint := cli.Endpoints()[0]
	taken := now().UTC()
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return "", Meta{}, fmt.Errorf("save snapshot: %w", err)
	}
	f, err := os.CreateTemp(opts.Dir, ".tmp-snapshot-*.db")
	if err != nil {
		return "", Meta{}, fmt.Errorf("save snapshot in %s: %w", opts.Dir, err)
	}
	file = f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(file)
		}
	}()
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		return "", Meta{}, fmt.Errorf("save snapshot: open stream from %s: %w", endpoint, err)
	}
	defer resp.Snapshot.Close()
	ah := newAsyncHasher()
	size, err := io.CopyBuffer(io.MultiWriter(f, ah), resp.Snapshot, make([]byte, copyBuffer))
	h := ah.Close()
	if err != nil {
		return "", Meta{}, fmt.Errorf("save snapshot from %s to %s: %w", endpoint, opts.Dir, explainWrite(err))
	}
	// etcd sends the database then its sha256: anything else was cut
	// short or damaged on the way.
	if !h.trailerOK() {
		return "", Meta{}, fmt.Errorf("save snapshot from %s: stream of %d bytes does not end with the sha256 etcd appends: incomplete or damaged", endpoint, size)
	}
	streamed := time.Now()
	// fsync while the source member describes the snapshot: the file's
	// pages are in the page cache, so its revision can be read meanwhile.
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	m = Meta{
		Cluster: opts.Cluster, StorageVersion: resp.Version, SHA256: h.sum(), Size: size,
		TakenBy: opts.TakenBy, Reason: opts.Reason, Time: taken,
	}
	m.Revision, err = fileRevision(file)
	if err == nil {
		err = describeMember(ctx, cli, endpoint, &m)
	}
	if syncErr := <-synced; err == nil && syncErr != nil {
		err = fmt.Errorf("write to %s: %w", opts.Dir, explainWrite(syncErr))
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		return "", Meta{}, fmt.Errorf("save snapshot: %w", err)
	}
	lg.Debug("snapshot saved", "bytes", size, "stream", streamed.Sub(start), "fsync+describe", time.Since(streamed))
	id, _ := parseHexID(m.ClusterID)
	m.Name = Name{Time: taken, Cluster: opts.Cluster, ClusterID: id, Revision: m.Revision}.String()
	return file, m, nil
}

// describeMember fills what the source member says about the snapshot's
// revision: HashKV and key count there (what a restore must reproduce),
// cluster ID, members and version.
func describeMember(ctx context.Context, cli *clientv3.Client, endpoint string, m *Meta) error {
	hash, err := cli.HashKV(ctx, endpoint, m.Revision)
	if err != nil {
		return fmt.Errorf("HashKV of %s at revision %d: %w", endpoint, m.Revision, err)
	}
	m.HashKV, m.CompactRevision = hash.Hash, hash.CompactRevision
	m.ClusterID = fmt.Sprintf("%016x", hash.Header.ClusterId)
	count, err := cli.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithCountOnly(), clientv3.WithRev(m.Revision), clientv3.WithSerializable())
	if err != nil {
		return fmt.Errorf("count keys of %s at revision %d: %w", endpoint, m.Revision, err)
	}
	m.KeyCount = count.Count
	st, err := cli.Status(ctx, endpoint)
	if err != nil {
		return fmt.Errorf("status of %s: %w", endpoint, err)
	}
	m.EtcdVersion = st.Version
	if m.Generation, err = generation(ctx, cli, m.Revision, m.ClusterID); err != nil {
		return fmt.Errorf("recovery record of %s at revision %d: %w", endpoint, m.Revision, err)
	}
	members, err := cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return fmt.Errorf("member list from %s: %w", endpoint, err)
	}
	for _, mem := range members.Members {
		m.Members = append(m.Members, Member{
			ID: fmt.Sprintf("%016x", mem.ID), Name: mem.Name, PeerURLs: mem.PeerURLs,
			ClientURLs: mem.ClientURLs, Learner: mem.IsLearner,
		})
	}
	return nil
}

// generation is the recovery generation of cluster clusterID (hex) at rev,
// from the recovery record the cluster holds (keys.Recovery): none, 0 (as
// bootstrapped); its own, the record's; another cluster's, one more (the
// record came with the data a recovery copied: this cluster is the next
// recovery, whose own record is written once it is healthy).
func generation(ctx context.Context, cli *clientv3.Client, rev int64, clusterID string) (int, error) {
	resp, err := cli.Get(ctx, keys.Recovery, clientv3.WithRev(rev), clientv3.WithSerializable())
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	var rec discovery.Recovery
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return 0, fmt.Errorf("%s: %w", keys.Recovery, err)
	}
	if rec.ClusterID == clusterID {
		return rec.Generation, nil
	}
	return rec.Generation + 1, nil
}

func parseHexID(s string) (uint64, error) {
	var id uint64
	_, err := fmt.Sscanf(s, "%x", &id)
	return id, err
}

// explainWrite adds the fix to a full disk.
func explainWrite(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w (fix: free space there, lower backup.retention, or point backup.dir at a larger volume)", err)
	}
	return err
}
