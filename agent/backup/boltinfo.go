package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fileRevision reads the revision a member restored from a snapshot's
// database will have, by etcd's own rule (mvcc store restore): the last key
// of the "key" bucket (8 bytes big-endian main revision first), raised to
// the finished or scheduled compaction revision (a compaction may have
// removed the newest tombstones), at least 1. Cursor seeks only, so cheap
// for any size; the file is opened read-only.
func fileRevision(file string) (int64, error) {
	db, err := bolt.Open(file, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return 0, fmt.Errorf("open snapshot database %s: %w (not an etcd snapshot, or truncated)", file, err)
	}
	defer db.Close()
	var rev int64
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return errors.New("no key bucket: not an etcd database")
		}
		rev = 1
		if k, _ := b.Cursor().Last(); len(k) >= 8 {
			rev = max(rev, int64(binary.BigEndian.Uint64(k[:8])))
		}
		if meta := tx.Bucket([]byte("meta")); meta != nil {
			for _, name := range []string{"finishedCompactRev", "scheduledCompactRev"} {
				if v := meta.Get([]byte(name)); len(v) >= 8 {
					rev = max(rev, int64(binary.BigEndian.Uint64(v[:8])))
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("snapshot database %s: %w", file, err)
	}
	return rev, nil
}
