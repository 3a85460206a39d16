package embedded

import (
	"context"
	"fmt"
	"log/slog"
	goruntime "runtime"
	"runtime/debug"
	"sync"

	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// crashHook turns etcd's own panics into an exit of this embedded instance,
// the way a panic ends an etcd process: watch stops etcd and Wait reports the
// exit. Without it a panic in any etcd goroutine ends the whole agent. Two
// kinds are caught: etcd's zap Panic logs (OnWrite; etcd 3.7 logs one, for
// one, on a Status call that reaches a member between its removal and its
// stop) and runtime panics in its gRPC handlers (the interceptors; grpc-go
// does not recover them, and one there took a whole test binary down).
type crashHook struct {
	log   *slog.Logger
	once  sync.Once
	fatal chan string // buffered 1: the first panic's message
}

func newCrashHook(log *slog.Logger) *crashHook {
	return &crashHook{log: log, fatal: make(chan string, 1)}
}

func (h *crashHook) report(msg string) { h.once.Do(func() { h.fatal <- msg }) }

// OnWrite runs after etcd's Panic log was written: the goroutine that logged
// it ends, as the process would.
func (h *crashHook) OnWrite(ce *zapcore.CheckedEntry, _ []zapcore.Field) {
	h.report(ce.Message)
	goruntime.Goexit()
}

// recovered reports a handler's panic and answers the call with Internal.
func (h *crashHook) recovered(method string, p any) error {
	msg := fmt.Sprintf("%v (in %s)", p, method)
	h.log.Error("embedded etcd panicked in a gRPC handler", "panic", msg, "stack", string(debug.Stack()))
	h.report(msg)
	return status.Errorf(codes.Internal, "etcd panicked: %s", msg)
}

// serverOptions are the interceptors that catch handler panics. embed appends
// them after etcd's own, so they wrap each handler directly.
func (h *crashHook) serverOptions() []grpc.ServerOption {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				resp, err = nil, h.recovered(info.FullMethod, p)
			}
		}()
		return next(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = h.recovered(info.FullMethod, p)
			}
		}()
		return next(srv, ss)
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}
