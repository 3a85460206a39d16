package testnet

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func lockPath(b Block) string {
	return filepath.Join(os.TempDir(), "etcd-agent-testnet", b.name()+".lock")
}

// TestBlocksAreExclusive: two takes get different blocks; while a block is
// held another process cannot lock it; once the test that took it ends,
// anyone can.
func TestBlocksAreExclusive(t *testing.T) {
	var held Block
	t.Run("hold", func(t *testing.T) {
		a, b := Take(t), Take(t)
		if a == b {
			t.Fatalf("two takes got the same block %s", a)
		}
		held = a
		if out, err := lockInChild(lockPath(a)); err == nil || !strings.Contains(out, "locked elsewhere") {
			t.Fatalf("another process locked held block %s: %v %s", a, err, out)
		}
		if _, err := lock(lockPath(a)); !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatalf("a second lock of held block %s in this process: %v, want EWOULDBLOCK", a, err)
		}
	})
	out, err := lockInChild(lockPath(held))
	if err != nil {
		t.Fatalf("block %s still locked after the test that took it ended: %v %s", held, err, out)
	}
}

// lockInChild runs this test binary as a child that tries to lock path.
func lockInChild(path string) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildLock$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TESTNET_CHILD_LOCK="+path)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestChildLock is the child of lockInChild.
func TestChildLock(t *testing.T) {
	path := os.Getenv("TESTNET_CHILD_LOCK")
	if path == "" {
		t.Skip("run by TestBlocksAreExclusive")
	}
	f, err := lock(path)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatal("locked elsewhere")
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestAddresses: a block's addresses are in 127.100.0.0/16 and bindable.
func TestAddresses(t *testing.T) {
	b := Take(t)
	for _, host := range []int{1, 2, 254} {
		a := b.Addr(host)
		if !a.IsLoopback() || a.As4()[1] != secondOctet || int(a.As4()[3]) != host || !strings.HasPrefix(b.String(), b.name()+".") {
			t.Errorf("host %d of %s is %s", host, b, a)
		}
		port := FreePort(t, b.IP(host))
		l, err := net.Listen("tcp", net.JoinHostPort(b.IP(host), "2379"))
		if err != nil {
			t.Fatalf("bind etcd's client port on %s: %v", b.IP(host), err)
		}
		l.Close()
		if port < 1024 {
			t.Errorf("FreePort on %s = %d", b.IP(host), port)
		}
	}
	for _, host := range []int{0, 255} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Addr(%d) did not panic", host)
				}
			}()
			b.Addr(host)
		}()
	}
}
