package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/runtime/internal/testenv"
)

// TestAbandonedStartIsStoppedBeforeStopReturns: a start whose context ends
// while embed.StartEtcd still runs (it asks the peers, with timeouts of
// seconds: a restarted member for their hashes, a joining one for the
// cluster) leaves an etcd starting on the data dir and the ports. Stop must
// not return before it is closed: a recovery stops etcd, then copies the
// data dir and starts a new member on the same ports.
func TestAbandonedStartIsStoppedBeforeStopReturns(t *testing.T) {
	ip := netip.MustParseAddr("127.0.0.1")
	m := testenv.NewMember(t, "abandoned", ip, "")
	// A joining member whose only peer accepts connections and never
	// answers: StartEtcd waits for the cluster's member list.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	m.Spec.InitialCluster += fmt.Sprintf(",silent=https://%s", silent.Addr())
	m.Spec.InitialClusterState = "existing"
	r := New(Options{Logger: slog.New(slog.DiscardHandler)})

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err = r.Ensure(ctx, m.Spec)
	cancel()
	if err == nil {
		t.Fatal("Ensure returned before StartEtcd could (no quorum): the test needs the start abandoned")
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{m.Spec.ClientPort, m.Spec.PeerPort} {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, uint16(port)).String())
		if err != nil {
			t.Fatalf("port %d still held after Stop returned: %v", port, err)
		}
		ln.Close()
	}
}
