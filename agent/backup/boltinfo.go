package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// fileRevision reads the newest revision in a snapshot's database: the last
// key of etcd's "key" bucket (8 bytes big-endian main revision first). A
// cursor seek, so cheap for any size; the file is opened read-only.
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
		k, _ := b.Cursor().Last()
		if len(k) >= 8 {
			rev = int64(binary.BigEndian.Uint64(k[:8]))
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("snapshot database %s: %w", file, err)
	}
	return rev, nil
}
