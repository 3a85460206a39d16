package embedded

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/etcd-agent/etcd-agent/internal/zapslog"
)

// TestCrashHookEndsOnlyTheGoroutine: a Panic log through the hooked logger
// (as etcd writes one) ends the goroutine that wrote it and reports the
// message, instead of panicking the process.
func TestCrashHookEndsOnlyTheGoroutine(t *testing.T) {
	h := newCrashHook(slog.New(slog.DiscardHandler))
	lg := zapslog.New(slog.New(slog.DiscardHandler)).WithOptions(zap.WithPanicHook(h))
	after := make(chan bool, 1)
	go func() {
		defer func() { after <- recover() == nil }()
		lg.Panic("failed to find local ID in cluster members")
		t.Error("the goroutine went on after the Panic log")
	}()
	select {
	case msg := <-h.fatal:
		if msg != "failed to find local ID in cluster members" {
			t.Errorf("fatal = %q", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fatal report")
	}
	if clean := <-after; !clean {
		t.Error("the goroutine panicked")
	}
}

// TestHandlerPanicAnsweredAndReported: a runtime panic in a gRPC handler
// (grpc-go does not recover them) is answered with Internal and reported as
// the instance's crash instead of ending the process.
func TestHandlerPanicAnsweredAndReported(t *testing.T) {
	h := newCrashHook(slog.New(slog.DiscardHandler))
	srv := grpc.NewServer(h.serverOptions()...)
	healthpb.RegisterHealthServer(srv, panickingHealth{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := healthpb.NewHealthClient(conn)

	_, err = cli.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "nil pointer") {
		t.Fatalf("unary call: err = %v, want Internal naming the panic", err)
	}
	select {
	case msg := <-h.fatal:
		if !strings.Contains(msg, "/grpc.health.v1.Health/Check") {
			t.Errorf("reported %q, want the method named", msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the panic was not reported")
	}

	w, err := cli.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("stream call: err = %v, want Internal", err)
	}
}

// panickingHealth panics in its handlers: a nil dereference and a panic call.
type panickingHealth struct {
	healthpb.UnimplementedHealthServer
}

func (panickingHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	var cause error
	return nil, status.Error(codes.Unknown, cause.Error()) // nil dereference
}

func (panickingHealth) Watch(*healthpb.HealthCheckRequest, healthpb.Health_WatchServer) error {
	panic("watch handler broke")
}
