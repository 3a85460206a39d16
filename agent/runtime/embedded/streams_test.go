package embedded

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/etcd-agent/etcd-agent/agent/runtime/internal/testenv"
)

// openStreams opens a raw watch stream and a lease keep-alive stream on the
// member (raw: clientv3 would move them to another member on their end, and
// hide how they ended) and returns a function that reads how each ended.
func openStreams(tb testing.TB, cli *clientv3.Client) func() map[string]error {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	conn := cli.ActiveConnection()
	watch, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		tb.Fatalf("open watch stream: %v", err)
	}
	create := &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}}
	if err := watch.Send(create); err != nil {
		tb.Fatalf("create watch: %v", err)
	}
	if resp, err := watch.Recv(); err != nil || !resp.Created {
		tb.Fatalf("watch created: %v, %v", resp, err)
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		tb.Fatalf("grant lease: %v", err)
	}
	keep, err := pb.NewLeaseClient(conn).LeaseKeepAlive(ctx)
	if err != nil {
		tb.Fatalf("open keep-alive stream: %v", err)
	}
	if err := keep.Send(&pb.LeaseKeepAliveRequest{ID: int64(lease.ID)}); err != nil {
		tb.Fatalf("keep lease alive: %v", err)
	}
	if _, err := keep.Recv(); err != nil {
		tb.Fatalf("keep-alive answer: %v", err)
	}
	return func() map[string]error {
		ended := map[string]error{}
		for {
			if _, err := watch.Recv(); err != nil {
				ended["watch"] = err
				break
			}
		}
		for {
			if _, err := keep.Recv(); err != nil {
				ended["lease keep-alive"] = err
				break
			}
		}
		return ended
	}
}

// TestStopEndsStreamsAsServerStopped: once etcd stops, its open streams end
// with Unavailable "etcdserver: server stopped" (clients move them to
// another member), not by embed.Close's graceful timeout running out and
// the connection being cut (7 s after a removal, on every leave).
func TestStopEndsStreamsAsServerStopped(t *testing.T) {
	m := testenv.NewMember(t, "streams", netip.MustParseAddr("127.0.0.1"), "")
	r := New(Options{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Ensure(ctx, m.Spec); err != nil {
		t.Fatal(err)
	}
	ended := openStreams(t, m.Client(t))
	if err := r.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for name, err := range ended() {
		if s := status.Convert(err); s.Code() != codes.Unavailable || s.Message() != "etcdserver: server stopped" {
			t.Errorf("%s stream ended with %v, want Unavailable \"etcdserver: server stopped\"", name, err)
		}
	}
}

// BenchmarkStopWithOpenStreams: how long Stop takes on a member with a watch
// and a lease keep-alive open (a client of any agent or application has
// both). Reports ms per stop.
func BenchmarkStopWithOpenStreams(b *testing.B) {
	m := testenv.NewMember(b, "streams", netip.MustParseAddr("127.0.0.1"), "")
	r := New(Options{Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	var total time.Duration
	for range b.N {
		b.StopTimer()
		if _, err := r.Ensure(ctx, m.Spec); err != nil {
			b.Fatal(err)
		}
		cli := m.Client(b)
		ended := openStreams(b, cli)
		b.StartTimer()
		start := time.Now()
		if err := r.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		ended()
		cli.Close()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/stop")
}
