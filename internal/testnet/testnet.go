// Package testnet hands out loopback addresses and ports to tests, so that
// tests binding fixed ports (etcd's 2379 and 2380 on every node address)
// can run in parallel, within a package and across the packages that
// `go test ./...` runs in separate processes.
//
// Take gives a test its own /24 out of 127.100.0.0/16: 127.100.Y.0/24,
// held through an flock on a file under os.TempDir()/etcd-agent-testnet
// that every process on the machine sees. The lock goes when the test ends
// (after the test's own cleanups, which stop what bound the addresses) or
// when the process dies. Addresses under 127.0.0.0/16, which older tests
// and `etcd-agent local up` assign by hand, are never handed out.
//
// On Linux the whole of 127.0.0.0/8 is local, so every address of a block
// can be bound without setup.
package testnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The blocks handed out: 127.100.Y.0/24 for Y in [0, Blocks).
const (
	secondOctet = 100
	Blocks      = 256
)

// Block is one test's /24 of loopback addresses.
type Block struct {
	y int // the third octet
}

// Take reserves a free block for the rest of the test (and its subtests).
// It fails the test when every block is taken.
func Take(t testing.TB) Block {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "etcd-agent-testnet")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		t.Fatalf("testnet: %v", err)
	}
	_ = os.Chmod(dir, 0o1777) // shared by every user's tests; best effort
	start := rand.IntN(Blocks)
	for k := range Blocks {
		b := Block{y: (start + k) % Blocks}
		f, err := lock(filepath.Join(dir, b.name()+".lock"))
		if errors.Is(err, syscall.EWOULDBLOCK) {
			continue
		}
		if err != nil {
			t.Fatalf("testnet: take %s: %v", b, err)
		}
		// Registered first, so it runs after every cleanup the test
		// registers later: nothing of the test binds the block any more.
		t.Cleanup(func() { f.Close() })
		t.Logf("testnet: loopback block %s", b)
		return b
	}
	t.Fatalf("testnet: all %d loopback blocks are taken (locks in %s)", Blocks, dir)
	return Block{}
}

// lock opens path and takes an exclusive flock on it without waiting.
// The lock belongs to this open file: another Take in this process opens
// the file again and is refused like another process would be. The file is
// close-on-exec, so children the test starts do not hold it.
func lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (b Block) name() string { return fmt.Sprintf("127.%d.%d", secondOctet, b.y) }

// String is the block in CIDR notation, e.g. "127.100.7.0/24".
func (b Block) String() string { return b.name() + ".0/24" }

// Addr is the block's address host (1-254).
func (b Block) Addr(host int) netip.Addr {
	if host < 1 || host > 254 {
		panic(fmt.Sprintf("testnet: host %d is outside 1-254", host))
	}
	return netip.AddrFrom4([4]byte{127, secondOctet, byte(b.y), byte(host)})
}

// IP is Addr as a string.
func (b Block) IP(host int) string { return b.Addr(host).String() }

// FreePort returns a TCP port that was free on ip a moment ago (the kernel
// picks it from the ephemeral range, which holds none of etcd's fixed
// ports).
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
