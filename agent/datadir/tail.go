package datadir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"google.golang.org/protobuf/proto"
)

// Tail is what a member's WAL holds at its end: the last entry (committed or
// not) and the commit index the member had recorded. A recovery from a
// member replays the whole tail, so the member whose tail is newest (raft's
// order: the higher last term, then the higher last index) holds every
// write the lost cluster acknowledged.
type Tail struct {
	MemberID  uint64 `json:"member_id"`
	ClusterID uint64 `json:"cluster_id"`
	LastIndex uint64 `json:"last_index"`
	LastTerm  uint64 `json:"last_term"`
	Commit    uint64 `json:"commit"`
}

// NewerThan says whether t's log is more up to date than o's, the way raft
// compares two candidates' logs.
func (t Tail) NewerThan(o Tail) bool {
	if t.LastTerm != o.LastTerm {
		return t.LastTerm > o.LastTerm
	}
	return t.LastIndex > o.LastIndex
}

// ReadTail reads the WAL of the member in dataDir to its end without opening
// it for writing and without its lock, so it works whether or not etcd runs
// on it: a record etcd is writing at that moment (torn, or failing its CRC)
// ends the read, as it ends etcd's own read after a crash.
func ReadTail(dataDir string) (Tail, error) {
	names, err := walFiles(dataDir)
	if err != nil {
		return Tail{}, err
	}
	if len(names) == 0 {
		return Tail{}, fmt.Errorf("read the WAL's tail: %s holds no WAL", walDir(dataDir))
	}
	var readers []fileutil.FileReader
	for _, name := range names {
		f, err := os.Open(filepath.Join(walDir(dataDir), name))
		if err != nil {
			return Tail{}, fmt.Errorf("read the WAL's tail: %w", err)
		}
		defer f.Close()
		readers = append(readers, fileutil.NewFileReader(f))
	}
	dec := wal.NewDecoder(readers...)
	var t Tail
	var rec walpb.Record
	for {
		err := dec.Decode(&rec)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, wal.ErrCRCMismatch) {
			break
		}
		if err != nil {
			return Tail{}, fmt.Errorf("read the WAL's tail in %s: %w", walDir(dataDir), err)
		}
		switch rec.GetType() {
		case wal.CrcType:
			dec.UpdateCRC(rec.GetCrc())
		case wal.MetadataType:
			var md etcdserverpb.Metadata
			if err := proto.Unmarshal(rec.GetData(), &md); err != nil {
				return Tail{}, fmt.Errorf("read the WAL's metadata in %s: %w", walDir(dataDir), err)
			}
			t.MemberID, t.ClusterID = md.GetNodeID(), md.GetClusterID()
		case wal.EntryType:
			// A later entry with a lower index replaced the ones after it
			// (a follower's conflicting tail): the last record is the end.
			e := wal.MustUnmarshalEntry(rec.GetData())
			t.LastIndex, t.LastTerm = e.GetIndex(), e.GetTerm()
		case wal.StateType:
			t.Commit = wal.MustUnmarshalState(rec.GetData()).GetCommit()
		case wal.SnapshotType:
			var s walpb.Snapshot
			if err := proto.Unmarshal(rec.GetData(), &s); err != nil {
				return Tail{}, fmt.Errorf("read a WAL snapshot record in %s: %w", walDir(dataDir), err)
			}
			if s.GetIndex() > t.LastIndex {
				t.LastIndex, t.LastTerm = s.GetIndex(), s.GetTerm()
			}
		}
	}
	if t.ClusterID == 0 {
		return Tail{}, fmt.Errorf("read the WAL's tail: no metadata record in %s", walDir(dataDir))
	}
	return t, nil
}
