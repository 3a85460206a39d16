package datadir

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNeverRan(t *testing.T) {
	me := FirstStart{Name: "etcd-1", PeerURL: "https://10.0.0.1:2380", Token: "tok"}
	tests := []struct {
		name   string
		marker *FirstStart
		wal    bool
		want   bool
	}{
		{"no marker: proves nothing", nil, false, false},
		{"marker, no WAL: never ran", &me, false, true},
		{"marker and WAL: ran", &me, true, false},
		{"another token's marker", &FirstStart{Name: me.Name, PeerURL: me.PeerURL, Token: "other"}, false, false},
		{"another member's marker", &FirstStart{Name: "etcd-2", PeerURL: "https://10.0.0.2:2380", Token: "tok"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if tt.marker != nil {
				m := *tt.marker
				m.At = time.Now()
				if err := WriteFirstStart(dir, m); err != nil {
					t.Fatal(err)
				}
			}
			if tt.wal {
				if err := os.MkdirAll(walDir(dir), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(walDir(dir), "0000000000000000-0000000000000000.wal"), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := NeverRan(dir, me)
			if err != nil || got != tt.want {
				t.Fatalf("NeverRan = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	// The marker goes with its data dir: a wiped data dir proves nothing.
	dir := filepath.Join(t.TempDir(), "data")
	if err := WriteFirstStart(dir, me); err != nil {
		t.Fatal(err)
	}
	if err := RemoveFirstStart(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := NeverRan(dir, me); got {
		t.Fatal("NeverRan after RemoveFirstStart")
	}
}
