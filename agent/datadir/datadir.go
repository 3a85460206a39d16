// Package datadir reads what the agent needs to know from an etcd data
// directory without starting etcd: whether it holds a member, and which member
// of which cluster (from the WAL's metadata record). It also moves a data dir
// aside: the agent never deletes a member's data on its own decision.
package datadir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"google.golang.org/protobuf/proto"
)

// walDir is where etcd keeps a member's write-ahead log.
func walDir(dataDir string) string { return filepath.Join(dataDir, "member", "wal") }

// HasMember reports whether dataDir holds an etcd member (a WAL file).
func HasMember(dataDir string) (bool, error) {
	names, err := walFiles(dataDir)
	return len(names) > 0, err
}

func walFiles(dataDir string) ([]string, error) {
	entries, err := os.ReadDir(walDir(dataDir))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("inspect data dir %s: %w", dataDir, err)
	}
	var names []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".wal" {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// Identity is the member a data dir belongs to.
type Identity struct {
	MemberID  uint64
	ClusterID uint64
}

// ReadIdentity reads the member and cluster ID from the metadata record that
// etcd writes at the head of every WAL file (the newest file is read: older
// ones may have been purged).
func ReadIdentity(dataDir string) (Identity, error) {
	names, err := walFiles(dataDir)
	if err != nil {
		return Identity{}, err
	}
	if len(names) == 0 {
		return Identity{}, fmt.Errorf("read member identity: %s holds no WAL", walDir(dataDir))
	}
	path := filepath.Join(walDir(dataDir), names[len(names)-1])
	f, err := os.Open(path)
	if err != nil {
		return Identity{}, fmt.Errorf("read member identity: %w", err)
	}
	defer f.Close()
	dec := wal.NewDecoder(fileutil.NewFileReader(f))
	for range 8 { // a CRC record, then the metadata record
		var rec walpb.Record
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return Identity{}, fmt.Errorf("read member identity from %s: %w", path, err)
		}
		switch rec.GetType() {
		case wal.CrcType:
			dec.UpdateCRC(rec.GetCrc())
		case wal.MetadataType:
			var md etcdserverpb.Metadata
			if err := proto.Unmarshal(rec.GetData(), &md); err != nil {
				return Identity{}, fmt.Errorf("read member identity from %s: %w", path, err)
			}
			return Identity{MemberID: md.GetNodeID(), ClusterID: md.GetClusterID()}, nil
		}
	}
	return Identity{}, fmt.Errorf("read member identity: no metadata record at the head of %s", path)
}

// MoveAside renames dataDir to a sibling "<dataDir>.removed-<UTC time>" and
// returns the new path. The data is kept for an operator to inspect or
// restore from; nothing is deleted.
func MoveAside(dataDir, why string, now time.Time) (string, error) {
	dst := fmt.Sprintf("%s.removed-%s", strings.TrimRight(dataDir, "/"), now.UTC().Format("20060102T150405Z"))
	if _, err := os.Stat(dst); err == nil {
		dst += fmt.Sprintf("-%d", now.UnixNano())
	}
	if err := os.Rename(dataDir, dst); err != nil {
		return "", fmt.Errorf("move data dir %s aside (%s): %w", dataDir, why, err)
	}
	note := fmt.Sprintf("moved aside by etcd-agent at %s: %s\nThe node rejoined the cluster as a new member; this copy is kept for inspection or a restore.\n",
		now.UTC().Format(time.RFC3339), why)
	_ = os.WriteFile(dst+"/MOVED-ASIDE.txt", []byte(note), 0o600)
	return dst, nil
}
