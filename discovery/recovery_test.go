package discovery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// checkRecoveryRecord: no record at first; a record is written only over
// the version it was read at (one recovery at a time), and read back as
// written.
func checkRecoveryRecord(t *testing.T, book RecoveryBook) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, v, err := book.Recovery(ctx)
	if err != nil || rec != nil || v != 0 {
		t.Fatalf("Recovery before any = %+v, %d, %v; want none", rec, v, err)
	}
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	first := Recovery{Generation: 1, State: RecoveryStarted, By: "etcd-10-0-1-5", From: "member data", Token: "t1",
		Replaced: []string{"aaaa"}, StartedAt: at}
	if err := book.SwapRecovery(ctx, first, 0); err != nil {
		t.Fatalf("first claim: %v", err)
	}
	other := first
	other.By = "etcd-10-0-1-6"
	if err := book.SwapRecovery(ctx, other, 0); !errors.Is(err, ErrRecoveryChanged) {
		t.Fatalf("a second claim over no record = %v, want ErrRecoveryChanged", err)
	}
	got, v1, err := book.Recovery(ctx)
	if err != nil || got == nil || !reflect.DeepEqual(*got, first) || v1 == 0 {
		t.Fatalf("Recovery = %+v (version %d), %v; want %+v", got, v1, err, first)
	}
	done := first
	done.State, done.ClusterID, done.DoneAt = RecoveryDone, "bbbb", at.Add(time.Minute)
	if err := book.SwapRecovery(ctx, done, v1); err != nil {
		t.Fatalf("update at version %d: %v", v1, err)
	}
	if err := book.SwapRecovery(ctx, other, v1); !errors.Is(err, ErrRecoveryChanged) {
		t.Fatalf("a write at the old version %d = %v, want ErrRecoveryChanged", v1, err)
	}
	got, v2, err := book.Recovery(ctx)
	if err != nil || got == nil || !reflect.DeepEqual(*got, done) || v2 == v1 {
		t.Fatalf("Recovery = %+v (version %d, was %d), %v; want %+v", got, v2, v1, err, done)
	}
	if !got.Replaces("aaaa") || got.Replaces("bbbb") || got.Replaces("cccc") {
		t.Errorf("%s: Replaces(aaaa, bbbb, cccc) = %v %v %v, want true false false", got, got.Replaces("aaaa"), got.Replaces("bbbb"), got.Replaces("cccc"))
	}
}

func TestV3RecoveryRecord(t *testing.T) {
	ds := startDiscoveryOn(t, newTestPKI(t), "127.0.9.50")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	token, err := NewToken(ctx, ds.Client, 3)
	if err != nil {
		t.Fatal(err)
	}
	checkRecoveryRecord(t, ds.v3(t, token))
	// Beside the registry: etcd's own discovery layout does not see it.
	size, regs, err := ShowToken(ctx, ds.Client, token)
	if err != nil || size != 3 || len(regs) != 0 {
		t.Fatalf("registry after the recovery record: size %d, %v, %v; want size 3 and no registrations", size, regs, err)
	}
}

// TestV2RecoveryRecord runs the same against a real v2 keys API (etcd 3.5
// with --enable-v2): prevExist and prevIndex make the swap.
func TestV2RecoveryRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd 3.5 with the v2 API")
	}
	bin := binary(t, "ETCD_AGENT_TEST_ETCD_V2", "etcd-v2", "etcd-v2")
	const ip = "127.0.9.51"
	clientURL := fmt.Sprintf("http://%s:%d", ip, testnet.FreePort(t, ip))
	peerURL := fmt.Sprintf("http://%s:%d", ip, testnet.FreePort(t, ip))
	startProcess(t, bin, "--enable-v2", "--name", "v2", "--data-dir", filepath.Join(t.TempDir(), "v2"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "v2="+peerURL)
	registry := clientURL + "/v2/keys/_etcd/registry/recovery"
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPut, registry+"/_config/size", strings.NewReader(url.Values{"value": {"3"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("v2 etcd never took the size key: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkRecoveryRecord(t, &V2{URL: registry})
}
