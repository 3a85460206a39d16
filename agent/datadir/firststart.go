package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

// A founder's first start leaves a marker inside the data dir, written
// before its started record in discovery: the record says "this member may
// have run", the marker with no WAL beside it says "it never did". The
// marker lives inside the data dir (unlike the side files), so whatever
// loses the WAL — a lost disk, a wiped or moved data dir — loses the marker
// with it: a WAL that was written and is gone never looks like one that was
// never written. etcd writes its WAL (fsynced, created by a rename) before
// its raft node runs, so no WAL means the member never voted nor
// acknowledged anything.

// firstStartName is the marker inside the data dir. etcd's own main logs a
// warning for it (a file it does not know) on the first start only: the
// marker goes once the WAL is there.
const firstStartName = ".etcd-agent-first-start"

// FirstStartPath is the first-start marker of dataDir.
func FirstStartPath(dataDir string) string { return filepath.Join(dataDir, firstStartName) }

// FirstStart is the member a founder is about to bootstrap, as its marker
// records it.
type FirstStart struct {
	Name    string    `json:"name"`
	PeerURL string    `json:"peer_url"`
	Token   string    `json:"token"` // the initial cluster token
	At      time.Time `json:"at"`
}

// same reports whether f and o mark the same member of the same bootstrap.
func (f FirstStart) same(o FirstStart) bool {
	return f.Name == o.Name && f.PeerURL == o.PeerURL && f.Token == o.Token
}

// WriteFirstStart writes the marker (creating the data dir, 0700), fsynced
// along with the data dir's own entry.
func WriteFirstStart(dataDir string, f FirstStart) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("first-start marker: %w", err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(filepath.Clean(dataDir))); err != nil {
		return fmt.Errorf("first-start marker: %w", err)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("first-start marker: %w", err)
	}
	if err := atomicfile.Write(FirstStartPath(dataDir), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("first-start marker: %w", err)
	}
	return nil
}

// RemoveFirstStart deletes the marker (none is fine), durably.
func RemoveFirstStart(dataDir string) error {
	p := FirstStartPath(dataDir)
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove first-start marker: %w", err)
	}
	return atomicfile.SyncDir(dataDir)
}

// NeverRan reports whether dataDir proves that member want never ran: its
// first-start marker is there, for the same member and token, and no WAL.
// Anything else (no marker, another member's, unreadable) proves nothing.
func NeverRan(dataDir string, want FirstStart) (bool, error) {
	has, err := HasMember(dataDir)
	if err != nil || has {
		return false, err
	}
	b, err := os.ReadFile(FirstStartPath(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read first-start marker: %w", err)
	}
	var got FirstStart
	if err := json.Unmarshal(b, &got); err != nil {
		return false, nil // a torn or foreign marker proves nothing
	}
	return got.same(want), nil
}
