package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// bootstrapAll runs Bootstrap for every member concurrently.
func bootstrapAll(t *testing.T, ctx context.Context, src func() Source, members []Member) []Result {
	t.Helper()
	results := make([]Result, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() { results[i], errs[i] = src().Bootstrap(ctx, m, nil) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return results
}

func testMembers(n int, base int) []Member {
	var ms []Member
	for i := range n {
		ms = append(ms, Member{Name: fmt.Sprintf("n%d", i+1), PeerURL: fmt.Sprintf("https://127.0.0.%d:2380", base+i)})
	}
	return ms
}

// checkFormed asserts that every result is the same, has want's members
// in the order of regs (the registry listing), and is Self=true.
func checkFormed(t *testing.T, results []Result, token string, regs []Registration, size int) {
	t.Helper()
	if len(regs) < size {
		t.Fatalf("registry holds %d registrations, want at least %d", len(regs), size)
	}
	var want []string
	for _, r := range regs[:size] {
		want = append(want, r.String())
	}
	for i, r := range results {
		if !r.Self || r.Token != token || r.InitialCluster() != strings.Join(want, ",") {
			t.Errorf("result %d = %+v, want Self, token %s, members %v", i, r, token, want)
		}
	}
}

func TestV3Bootstrap(t *testing.T) {
	ds := startDiscovery(t, newTestPKI(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := NewToken(ctx, ds.Client, 0); err == nil {
		t.Error("NewToken with size 0 succeeded")
	}
	token, err := NewToken(ctx, ds.Client, 3)
	if err != nil {
		t.Fatal(err)
	}
	members := testMembers(3, 21)

	// Progress from one of the three: counts only go up and end at 3/3.
	var mu sync.Mutex
	var seen []Progress
	src := func() Source { return ds.v3(t, token) }
	var first Result
	var wg sync.WaitGroup
	wg.Go(func() {
		var err error
		first, err = src().Bootstrap(ctx, members[0], func(p Progress) { mu.Lock(); seen = append(seen, p); mu.Unlock() })
		if err != nil {
			t.Error(err)
		}
	})
	results := bootstrapAll(t, ctx, src, members[1:])
	wg.Wait()
	results = append(results, first)

	size, regs, err := ShowToken(ctx, ds.Client, token)
	if err != nil || size != 3 || len(regs) != 3 {
		t.Fatalf("ShowToken = %d, %v, %v; want 3 registrations", size, regs, err)
	}
	if !slices.IsSortedFunc(regs, func(a, b Registration) int { return int(a.CreateRevision - b.CreateRevision) }) {
		t.Errorf("ShowToken order is not by create revision: %+v", regs)
	}
	checkFormed(t, results, token, regs, 3)
	for _, r := range regs {
		id, _ := MemberID(token, r.Member())
		if r.ID != id {
			t.Errorf("registration %s has key %s, want computed ID %s", r, r.ID, id)
		}
	}
	mu.Lock()
	if len(seen) == 0 || seen[len(seen)-1] != (Progress{Registered: 3, Size: 3}) {
		t.Errorf("progress = %+v, want to end at 3/3", seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Registered < seen[i-1].Registered {
			t.Errorf("progress went down: %+v", seen)
		}
	}
	mu.Unlock()

	t.Run("fourth joins", func(t *testing.T) {
		res, err := ds.v3(t, token).Bootstrap(ctx, Member{Name: "n4", PeerURL: "https://127.0.0.24:2380"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Self || res.InitialCluster() != results[0].InitialCluster() {
			t.Errorf("fourth got %+v, want Self=false with %s", res, results[0].InitialCluster())
		}
		if _, regs, _ := ShowToken(ctx, ds.Client, token); len(regs) != 3 {
			t.Errorf("fourth registered itself into a full registry: %v", regs)
		}
	})
	t.Run("rerun reuses registration", func(t *testing.T) {
		res, err := ds.v3(t, token).Bootstrap(ctx, members[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Self || res.InitialCluster() != results[0].InitialCluster() {
			t.Errorf("rerun got %+v, want %+v", res, results[0])
		}
		_, regs2, _ := ShowToken(ctx, ds.Client, token)
		if !slices.Equal(regs, regs2) {
			t.Errorf("registry changed on rerun: %v -> %v", regs, regs2)
		}
	})
	t.Run("name claimed by another peer URL", func(t *testing.T) {
		_, err := ds.v3(t, token).Bootstrap(ctx, Member{Name: "n2", PeerURL: "https://127.0.0.99:2380"}, nil)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "https://127.0.0.22:2380") || !strings.Contains(err.Error(), "https://127.0.0.99:2380") {
			t.Errorf("err = %v, want a conflict naming both peer URLs", err)
		}
	})
	t.Run("peer URL claimed under another name", func(t *testing.T) {
		_, err := ds.v3(t, token).Bootstrap(ctx, Member{Name: "other", PeerURL: "https://127.0.0.22:2380"}, nil)
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "n2=https://127.0.0.22:2380") {
			t.Errorf("err = %v, want a conflict naming n2", err)
		}
	})
}

func TestV3BadTokens(t *testing.T) {
	ds := startDiscovery(t, newTestPKI(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	self := Member{Name: "n1", PeerURL: "https://127.0.0.21:2380"}

	_, err := ds.v3(t, "nosuchtoken").Bootstrap(ctx, self, nil)
	if !errors.Is(err, ErrNoSize) || !strings.Contains(err.Error(), "discovery token nosuchtoken has no size") ||
		!strings.Contains(err.Error(), "etcd-agent discovery new --size N") {
		t.Errorf("token without size: err = %v", err)
	}
	if _, _, err := ShowToken(ctx, ds.Client, "nosuchtoken"); !errors.Is(err, ErrNoSize) {
		t.Errorf("ShowToken without size: err = %v", err)
	}
	for _, bad := range []string{"0", "-3", "three", ""} {
		token := "bad" + strings.Trim(bad, "-")
		if _, err := ds.Client.Put(ctx, sizeKey(token), bad); err != nil {
			t.Fatal(err)
		}
		_, err := ds.v3(t, token).Bootstrap(ctx, self, nil)
		if !errors.Is(err, ErrBadSize) || !strings.Contains(err.Error(), fmt.Sprintf("bad size %q", bad)) {
			t.Errorf("size %q: err = %v", bad, err)
		}
		if resp, _ := ds.Client.Get(ctx, membersPrefix(token), clientv3WithPrefix()...); resp != nil && resp.Count != 0 {
			t.Errorf("size %q: registered anyway", bad)
		}
	}
	if _, err := ds.v3(t, "a/b").Bootstrap(ctx, self, nil); err == nil {
		t.Error("token with a slash accepted")
	}
}

func TestV3Unreachable(t *testing.T) {
	port := testnet.FreePort(t, "127.0.0.1") // nothing listens there
	d := &V3{Endpoints: []string{fmt.Sprintf("https://127.0.0.1:%d", port)}, Token: "tok", RequestTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var problems []string
	start := time.Now()
	_, err := d.Bootstrap(ctx, Member{Name: "n1", PeerURL: "https://127.0.0.21:2380"}, func(p Progress) {
		if p.Problem != "" {
			problems = append(problems, p.Problem)
		}
	})
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("gave up after %s, want about the 2.5s deadline", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("err = %v, want deadline exceeded and 'unreachable'", err)
	}
	want := fmt.Sprintf("discovery at https://127.0.0.1:%d unreachable, retrying in ", port)
	if len(problems) < 2 || !strings.HasPrefix(problems[0], want) {
		t.Errorf("progress problems = %q, want at least 2 starting %q", problems, want)
	}
	t.Logf("error: %v; problems: %q", err, problems)
}
