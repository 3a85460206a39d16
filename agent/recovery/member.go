package recovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/datadir"
	"github.com/etcd-agent/etcd-agent/internal/zapslog"

	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

// MemberSnapshot is a snapshot made from a member's data dir.
type MemberSnapshot struct {
	Path string // the snapshot file, with etcd's sha256 trailer
	// The member the data belonged to.
	MemberID, ClusterID uint64
	// WALCommit is the commit index the WAL recorded; LastIndex the last
	// entry it holds. Entries in between were kept (see commitWALTail).
	WALCommit, LastIndex uint64
	Revision             int64
}

// throwAwayStart bounds the start of the throw-away member.
const throwAwayStart = 5 * time.Minute

// SnapshotFromMember makes a snapshot holding every entry of the member in
// dataDir, which it never modifies: it copies the member into workDir, marks
// every entry of the copy's WAL committed, starts the copy alone
// (--force-new-cluster, in-process, on ports nobody knows) so etcd applies
// them all, and saves a snapshot of it. member is the member's own
// configuration (TLS, limits); its data dir and ports are replaced.
func SnapshotFromMember(ctx context.Context, dataDir, workDir string, member *embed.Config, log *slog.Logger) (MemberSnapshot, error) {
	copyDir := filepath.Join(workDir, "member-copy")
	if err := os.RemoveAll(copyDir); err != nil { // an earlier attempt's copy
		return MemberSnapshot{}, fmt.Errorf("clear %s: %w", copyDir, err)
	}
	if err := copyTree(filepath.Join(dataDir, "member"), filepath.Join(copyDir, "member")); err != nil {
		return MemberSnapshot{}, fmt.Errorf("copy the member data: %w", err)
	}
	id, err := datadir.ReadIdentity(copyDir)
	if err != nil {
		return MemberSnapshot{}, err
	}
	lg := zapslog.New(log)
	commit, last, err := commitWALTail(copyDir, lg)
	if err != nil {
		return MemberSnapshot{}, err
	}
	snap := MemberSnapshot{Path: filepath.Join(workDir, "member.snapshot"), MemberID: id.MemberID, ClusterID: id.ClusterID, WALCommit: commit, LastIndex: last}
	if snap.Revision, err = snapshotAlone(ctx, copyDir, member, snap.Path, lg); err != nil {
		return MemberSnapshot{}, err
	}
	if err := os.RemoveAll(copyDir); err != nil {
		log.Warn("remove the throw-away copy", "dir", copyDir, "err", err)
	}
	return snap, nil
}

// commitWALTail records every entry of the WAL as committed. A follower
// appends entries before it learns they are committed, and
// --force-new-cluster drops every entry past the commit index it knows:
// writes the lost leader acknowledged would go with them. Every entry in a
// WAL was proposed by a leader whose client either got an answer after the
// entry committed or none at all (an ambiguous timeout), so applying them
// all loses no acknowledged write and invents none.
func commitWALTail(dataDir string, lg *zap.Logger) (commit, last uint64, err error) {
	walDir := filepath.Join(dataDir, "member", "wal")
	snaps, err := wal.ValidSnapshotEntries(lg, walDir)
	if err != nil {
		return 0, 0, fmt.Errorf("read the WAL's snapshot entries: %w", err)
	}
	start := &walpb.Snapshot{}
	if len(snaps) > 0 {
		start = snaps[len(snaps)-1]
	}
	w, err := wal.Open(lg, walDir, start)
	if err != nil {
		return 0, 0, fmt.Errorf("open the WAL: %w", err)
	}
	_, st, ents, err := w.ReadAll()
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// A torn last record (killed mid-write): etcd repairs it at start
		// the same way.
		_ = w.Close()
		if !wal.Repair(lg, walDir) {
			return 0, 0, fmt.Errorf("read the WAL: %w (and it cannot be repaired)", err)
		}
		if w, err = wal.Open(lg, walDir, start); err != nil {
			return 0, 0, fmt.Errorf("open the repaired WAL: %w", err)
		}
		_, st, ents, err = w.ReadAll()
	}
	if err != nil {
		_ = w.Close()
		return 0, 0, fmt.Errorf("read the WAL: %w", err)
	}
	commit, last = st.GetCommit(), start.GetIndex()
	if len(ents) > 0 {
		last = ents[len(ents)-1].GetIndex()
	}
	if last > commit {
		err = w.Save(&raftpb.HardState{Term: new(st.GetTerm()), Vote: new(st.GetVote()), Commit: new(last)}, nil)
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, fmt.Errorf("mark the WAL's entries committed: %w", err)
	}
	return commit, last, nil
}

// snapshotAlone starts the member in dir alone (--force-new-cluster) with
// the member's configuration but on ports the system picks (on the member's
// own hosts, with its TLS: never a plaintext listener), saves a snapshot to
// path through an in-process client once it serves, and stops it. It
// returns the snapshot's revision.
func snapshotAlone(ctx context.Context, dir string, member *embed.Config, path string, lg *zap.Logger) (int64, error) {
	cfg := member // built for this start: changed in place
	cfg.Dir = dir
	cfg.WalDir = ""
	cfg.ForceNewCluster = true
	cfg.InitialCluster = "" // restarting from the WAL
	cfg.DiscoveryCfg.Token = ""
	peer, client := anyPort(cfg.ListenPeerUrls), anyPort(cfg.ListenClientUrls)
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = peer, peer
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = client, client
	cfg.ListenClientHttpUrls = nil
	cfg.ListenMetricsUrls = nil
	cfg.QuotaBackendBytes = 8 << 30 // etcd's maximum: never NOSPACE on a large member
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	// The copy still lists the lost cluster's members until it has applied
	// their removal, and would dial them as a leader of a newer term: a
	// live old member (one a refused recovery left running) took its
	// messages. A self-signed peer certificate keeps it apart: every member
	// demands one from the cluster's CA.
	cfg.PeerTLSInfo = transport.TLSInfo{}
	cfg.PeerAutoTLS = true
	if err := cfg.Validate(); err != nil {
		return 0, fmt.Errorf("configure the member's copy: %w", err)
	}
	if err := cfg.PeerSelfCert(); err != nil {
		return 0, fmt.Errorf("self-signed peer certificate for the member's copy: %w", err)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return 0, fmt.Errorf("start the member's copy alone: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return 0, fmt.Errorf("the member's copy stopped while starting: %w", err)
	case <-e.Server.StopNotify():
		return 0, errors.New("the member's copy stopped while starting (see the log)")
	case <-time.After(throwAwayStart):
		return 0, fmt.Errorf("the member's copy did not serve within %s", throwAwayStart)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	cli := v3client.New(e.Server)
	defer cli.Close()
	resp, err := cli.Get(ctx, "/", clientv3.WithLimit(1), clientv3.WithKeysOnly())
	if err != nil {
		return 0, fmt.Errorf("read the revision of the member's copy: %w", err)
	}
	rc, err := cli.Snapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("snapshot the member's copy: %w", err)
	}
	defer rc.Close()
	if err := writeFileAtomic(path, rc); err != nil {
		return 0, fmt.Errorf("snapshot the member's copy: %w", err)
	}
	return resp.Header.GetRevision(), nil
}

// anyPort is the first of urls with port 0: the system picks a free one.
func anyPort(urls []url.URL) []url.URL {
	if len(urls) == 0 {
		return []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	}
	u := urls[0]
	u.Host = net.JoinHostPort(u.Hostname(), "0")
	return []url.URL{u}
}

// writeFileAtomic writes r to path through a synced temporary file.
func writeFileAtomic(path string, r io.Reader) error {
	return atomicfile.WriteFrom(context.Background(), path, r, atomicfile.Options{Mode: 0o600})
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}
