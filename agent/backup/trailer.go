package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
)

// snapshotHasher hashes a snapshot as it streams by: the sha256 of the
// whole file (what the metadata records) and the sha256 of all but its last
// 32 bytes, which must equal those 32 bytes, etcd's own trailer. A file
// that passes was written whole by etcd's Snapshot API: only then is it
// safe to open with bbolt, which maps the file and would crash the process
// (SIGBUS) on a truncated one.
type snapshotHasher struct {
	full, inner hash.Hash
	tail        []byte // the last etcdTrailer bytes seen, not yet in inner
	n           int64
}

func newSnapshotHasher() *snapshotHasher {
	return &snapshotHasher{full: sha256.New(), inner: sha256.New()}
}

func (h *snapshotHasher) Write(p []byte) (int, error) {
	h.full.Write(p)
	h.n += int64(len(p))
	buf := append(h.tail, p...)
	if over := len(buf) - etcdTrailer; over > 0 {
		h.inner.Write(buf[:over])
		buf = buf[over:]
	}
	h.tail = append(h.tail[:0:0], buf...)
	return len(p), nil
}

// sum is the whole file's sha256 (hex).
func (h *snapshotHasher) sum() string { return hex.EncodeToString(h.full.Sum(nil)) }

// trailerOK says whether the stream ended with the sha256 of what came
// before it, in a size etcd sends (whole 512-byte sectors plus the trailer).
func (h *snapshotHasher) trailerOK() bool {
	return h.n%512 == etcdTrailer && bytes.Equal(h.inner.Sum(nil), h.tail)
}

// hashSnapshotFile reads a snapshot file once through a snapshotHasher.
func hashSnapshotFile(file string) (*snapshotHasher, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := newSnapshotHasher()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h, nil
}
