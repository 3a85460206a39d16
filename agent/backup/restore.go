package backup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.etcd.io/etcd/etcdutl/v3/snapshot"

	"github.com/etcd-agent/etcd-agent/internal/zapslog"
)

// DefaultRevisionBump is how far Restore raises the revision unless told
// otherwise: far above any number of writes that can have happened since a
// snapshot was taken, as etcd's recovery guide asks (it uses 1e9 too), so
// the restored revision is never below one a client already saw.
const DefaultRevisionBump = 1_000_000_000

// RestoreOptions says what member the restored data dir is for.
type RestoreOptions struct {
	// DataDir receives the member's data; it must not exist or be empty.
	DataDir string
	// Name and PeerURL are the restored member's (--name, its peer URL).
	Name    string
	PeerURL string
	// InitialCluster is "name=peerURL,..." of the new cluster's first
	// members. Zero: this member alone (Name=PeerURL), the usual recovery:
	// the others join it as new members.
	InitialCluster string
	// ClusterToken is the new cluster's --initial-cluster-token. It should
	// differ from the lost cluster's, so the new cluster gets a new ID.
	// Required.
	ClusterToken string
	// RevisionBump raises the restored revision and marks every revision
	// up to the new one compacted, so watchers (Kubernetes informers, …)
	// resynchronise instead of missing changes. Zero: DefaultRevisionBump.
	RevisionBump uint64
	// KeepRevision restores the revision as it was (no bump, nothing marked
	// compacted). Only for verifying a snapshot, never for a cluster that
	// clients used.
	KeepRevision bool
	// Logger receives etcdutl's messages (at debug level). Zero: discarded.
	Logger *slog.Logger
}

// Restore writes a new etcd data directory from snapshotFile, through etcd's
// own restore (go.etcd.io/etcd/etcdutl/v3/snapshot, what `etcdutl snapshot
// restore` runs). The snapshot's own sha256 (appended by etcd's Snapshot
// API) is checked; a file copied out of a data dir has none and is refused.
// On failure the partly written DataDir is removed (it was empty before).
func Restore(ctx context.Context, snapshotFile string, opts RestoreOptions) error {
	if err := opts.check(snapshotFile); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg := snapshot.RestoreConfig{
		SnapshotPath:        snapshotFile,
		Name:                opts.Name,
		OutputDataDir:       opts.DataDir,
		PeerURLs:            []string{opts.PeerURL},
		InitialCluster:      opts.InitialCluster,
		InitialClusterToken: opts.ClusterToken,
	}
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = opts.Name + "=" + opts.PeerURL
	}
	if !opts.KeepRevision {
		cfg.RevisionBump, cfg.MarkCompacted = opts.RevisionBump, true
		if cfg.RevisionBump == 0 {
			cfg.RevisionBump = DefaultRevisionBump
		}
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	existed := dirExists(opts.DataDir)
	// etcdutl's restore has no context; it is bounded by the file's size.
	if err := snapshot.NewV3(zapslog.New(lg)).Restore(cfg); err != nil {
		if !existed {
			_ = os.RemoveAll(opts.DataDir)
		}
		return fmt.Errorf("restore snapshot %s into %s: %w", snapshotFile, opts.DataDir, explainRestore(err))
	}
	return nil
}

func (o RestoreOptions) check(snapshotFile string) error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"DataDir", o.DataDir}, {"Name", o.Name}, {"PeerURL", o.PeerURL}, {"ClusterToken", o.ClusterToken},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("restore: RestoreOptions.%s required", strings.Join(missing, ", "))
	}
	if _, err := os.Stat(snapshotFile); err != nil {
		return fmt.Errorf("restore: snapshot file: %w", err)
	}
	if entries, err := os.ReadDir(o.DataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("restore: data dir %s is not empty: move it aside first (it may hold the only copy of a member's data)", o.DataDir)
	}
	return nil
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// explainRestore adds the fix to etcdutl's terse errors.
func explainRestore(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "snapshot missing hash"):
		return fmt.Errorf("%w (the file has no sha256 trailer: it was copied from a data dir, not saved through the Snapshot API; it cannot be checked)", err)
	case strings.Contains(msg, "expected sha256"):
		return fmt.Errorf("%w (the file is corrupt or truncated: fetch it again or use an older snapshot)", err)
	}
	return err
}
