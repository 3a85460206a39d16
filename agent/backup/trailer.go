package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
)

// snapshotHasher checks a snapshot as it streams by, in one sha256 pass:
// etcd's Snapshot API sends the database followed by the database's sha256,
// so the hash of all but the last 32 bytes must equal those 32 bytes. That
// sha256 identifies the snapshot (Meta.SHA256). A file that passes was
// written whole by etcd: only then is it safe to open with bbolt, which maps
// the file and would crash the process (SIGBUS) on a truncated one.
type snapshotHasher struct {
	db   hash.Hash
	tail [etcdTrailer]byte // the last bytes seen, not yet hashed
	held int               // how many of tail are filled
	n    int64
}

func newSnapshotHasher() *snapshotHasher { return &snapshotHasher{db: sha256.New()} }

// Write hashes all but the last etcdTrailer bytes seen so far, without
// allocating (it sits on the snapshot's hot path).
func (h *snapshotHasher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if len(p) >= etcdTrailer {
		h.db.Write(h.tail[:h.held])
		h.db.Write(p[:len(p)-etcdTrailer])
		h.held = copy(h.tail[:], p[len(p)-etcdTrailer:])
		return len(p), nil
	}
	// A short write: keep the newest etcdTrailer bytes of tail+p.
	if over := h.held + len(p) - etcdTrailer; over > 0 {
		h.db.Write(h.tail[:over])
		h.held = copy(h.tail[:], h.tail[over:h.held])
	}
	h.held += copy(h.tail[h.held:], p)
	return len(p), nil
}

// trailerOK says whether the stream ended with the sha256 of what came
// before it, in a size etcd sends (whole 512-byte sectors plus the trailer).
func (h *snapshotHasher) trailerOK() bool {
	return h.n%512 == etcdTrailer && h.held == etcdTrailer && bytes.Equal(h.db.Sum(nil), h.tail[:])
}

// sum is the database's sha256 (hex), as its trailer says.
func (h *snapshotHasher) sum() string { return hex.EncodeToString(h.tail[:h.held]) }

// hashSnapshotFile reads a snapshot file once through a snapshotHasher.
func hashSnapshotFile(file string) (*snapshotHasher, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := newSnapshotHasher()
	if _, err := io.CopyBuffer(h, f, make([]byte, copyBuffer)); err != nil {
		return nil, err
	}
	return h, nil
}

// copyBuffer is the read size for snapshot files and streams: large reads,
// few syscalls.
const copyBuffer = 1 << 20

// asyncHasher feeds a snapshotHasher from its own goroutine, so the sha256
// runs beside the stream's receiving and writing (on another core when
// there is one) instead of in line with them. Close waits for it.
type asyncHasher struct {
	h    *snapshotHasher
	ch   chan []byte
	done chan struct{}
	free chan []byte // recycled chunk buffers
}

func newAsyncHasher() *asyncHasher {
	a := &asyncHasher{h: newSnapshotHasher(), ch: make(chan []byte, 16), done: make(chan struct{}), free: make(chan []byte, 18)}
	go func() {
		defer close(a.done)
		for b := range a.ch {
			a.h.Write(b)
			select {
			case a.free <- b[:0]:
			default:
			}
		}
	}()
	return a
}

// Write queues a copy of p (the caller reuses p).
func (a *asyncHasher) Write(p []byte) (int, error) {
	var b []byte
	select {
	case b = <-a.free:
	default:
		b = make([]byte, 0, max(len(p), copyBuffer))
	}
	a.ch <- append(b, p...)
	return len(p), nil
}

// Close waits until everything written is hashed and returns the hasher.
func (a *asyncHasher) Close() *snapshotHasher {
	close(a.ch)
	<-a.done
	return a.h
}
