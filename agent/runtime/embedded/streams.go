package embedded

import (
	"context"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
)

// streamEnder ends the long-lived gRPC streams (watches, lease keep-alives)
// of an embedded etcd once its server has stopped. embed.Etcd.Close stops
// its gRPC servers gracefully, waiting up to the request timeout (7 s with
// a 1 s election) for streams that never end by themselves: nothing in etcd
// ends a watch when the server stops. A removed member then held its
// `leave`, and the terminate hook behind it, 7 s after its removal, and
// every stop of an embedded member took as long. Ended here, each stream
// answers Unavailable "etcdserver: server stopped", on which etcd clients
// move the stream to another member (a halt code would end the client's
// watch instead).
type streamEnder struct {
	once    sync.Once
	stopped chan struct{}
}

func newStreamEnder() *streamEnder { return &streamEnder{stopped: make(chan struct{})} }

// end ends every open stream and answers any opened later at once.
func (s *streamEnder) end() { s.once.Do(func() { close(s.stopped) }) }

func (s *streamEnder) ended() bool {
	select {
	case <-s.stopped:
		return true
	default:
		return false
	}
}

// serverOption gives each stream handler a context that ends with the
// server (etcd's handlers select on the stream's context).
func (s *streamEnder) serverOption() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
		if s.ended() {
			return rpctypes.ErrGRPCStopped
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		go func() {
			select {
			case <-s.stopped:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := next(srv, &endingStream{ServerStream: ss, ctx: ctx})
		if err != nil && s.ended() {
			// A stream that finished (a snapshot sent whole) keeps its
			// success.
			return rpctypes.ErrGRPCStopped
		}
		return err
	})
}

// endingStream is a server stream whose context ends with the server.
type endingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (e *endingStream) Context() context.Context { return e.ctx }
