package report_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/report"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sample() report.NodeReport {
	return report.NodeReport{
		PID: os.Getpid(), Version: "v0.1.0", UpdatedAt: t0,
		Phase: report.PhaseLearner, Message: "learner, catching up 71%", LastError: "promote: too many learners",
		Name: "etcd-10-0-1-5", PrivateIP: "10.0.1.5", PublicIP: "3.3.3.3", InstanceID: "i-0abc",
		AvailabilityZone: "eu-west-1a", Hostname: "ip-10-0-1-5",
		ClientURL: "https://10.0.1.5:2379", PeerURL: "https://10.0.1.5:2380",
		Endpoints: []string{"https://10.0.1.5:2379", "https://10.0.1.6:2379"},
		CertDir:   "/var/lib/etcd-agent/pki",
		Certs:     []report.Cert{{Role: "server", NotAfter: t0.Add(365 * 24 * time.Hour)}},
		Transitions: []report.Transition{
			{At: t0, Phase: report.PhaseStarting},
			{At: t0.Add(time.Second), Phase: report.PhaseLearner, Message: "learner"},
		},
		Decisions: []report.Decision{{At: t0, Action: "join", Reason: "discovery full, 3 live members"}},
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "status.json") // parent created by Write
	want := sample()
	if err := report.Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := report.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v, want 0644", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{"\n  \"phase\": \"learner\",", `"private_ip": "10.0.1.5"`, `"not_after": "2026-03-01T12:00:00Z"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("file lacks %s:\n%s", want, data)
		}
	}
}

func TestReadMissingIsNotExist(t *testing.T) {
	_, err := report.Read(filepath.Join(t.TempDir(), "status.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestReadCorruptNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status.json")
	os.WriteFile(path, []byte("{\"pid\": "), 0o644)
	if _, err := report.Read(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Read corrupt file: %v, want an error naming %s", err, path)
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "status.json")
	// Overwrite repeatedly while readers read: every read parses, and the
	// directory ends with the report only.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 1)
	if err := report.Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := report.Read(path); err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
		}
	}()
	for i := range 200 {
		r := sample()
		r.Message = strings.Repeat("x", i*50) // vary the size
		if err := report.Write(path, r); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("reader saw a partial report: %v", err)
	default:
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "status.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("dir holds %q, want only status.json", names)
	}
}

func TestWriteFailureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory: rename fails after the temp file
	// was written.
	path := filepath.Join(dir, "status.json")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := report.Write(path, sample()); err == nil {
		t.Fatal("Write over a directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries after a failed write, want 1 (the directory)", len(entries))
	}
}

func TestAlive(t *testing.T) {
	now := t0.Add(time.Hour)
	const maxAge = 30 * time.Second

	// A process that has exited and been reaped: its pid is free.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := cmd.Process.Pid

	for _, tc := range []struct {
		name       string
		pid        int
		updatedAt  time.Time
		want       bool
		reasonHave string
	}{
		{"own pid, fresh", os.Getpid(), now.Add(-5 * time.Second), true, "running"},
		{"own pid, written a moment in the future", os.Getpid(), now.Add(time.Second), true, "running"},
		{"pid 1 (other user's process: EPERM or ours)", 1, now, true, "running"},
		{"own pid, stale", os.Getpid(), now.Add(-2 * time.Minute), false, "2m0s ago"},
		{"own pid, never updated", os.Getpid(), time.Time{}, false, "never updated"},
		{"dead pid", deadPID, now, false, fmt.Sprintf("pid %d) is not running", deadPID)},
		{"no pid", 0, now, false, "no agent pid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := report.NodeReport{PID: tc.pid, UpdatedAt: tc.updatedAt}
			got, reason := r.Alive(now, maxAge)
			if got != tc.want || !strings.Contains(reason, tc.reasonHave) {
				t.Fatalf("Alive = %v, %q; want %v and a reason containing %q", got, reason, tc.want, tc.reasonHave)
			}
		})
	}
}
