package backup

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	mrand "math/rand/v2"
	"testing"
)

// TestSnapshotHasher: etcd's trailer is recognised whatever the write
// sizes, and a cut or altered stream is not.
func TestSnapshotHasher(t *testing.T) {
	db := make([]byte, 512*37)
	_, _ = rand.Read(db)
	sum := sha256.Sum256(db)
	file := append(append([]byte(nil), db...), sum[:]...)
	feed := func(b []byte) *snapshotHasher {
		h := newSnapshotHasher()
		for len(b) > 0 {
			n := min(len(b), []int{1, 7, 31, 32, 33, 4096, 70000}[mrand.IntN(7)])
			h.Write(b[:n])
			b = b[n:]
		}
		return h
	}
	for range 50 {
		if h := feed(file); !h.trailerOK() || h.sum() != hex.EncodeToString(sum[:]) || h.n != int64(len(file)) {
			t.Fatalf("whole snapshot: ok %v sum %s", h.trailerOK(), h.sum())
		}
	}
	bad := append([]byte(nil), file...)
	bad[100] ^= 1
	for name, b := range map[string][]byte{"truncated": file[:len(file)/2], "no trailer": db, "altered": bad, "empty": nil} {
		if feed(b).trailerOK() {
			t.Errorf("%s snapshot passes", name)
		}
	}
}
