package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Server serves a registry's metrics over plain HTTP on one address.
type Server struct {
	// Address is host:port to listen on (config metrics.address).
	Address  string
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// OnListen is called with nil once listening, or with the error each
	// time listening fails (the agent turns it into a problem). May be nil.
	OnListen func(error)
}

// Serve listens and serves until ctx ends. A failed listen (port in use) is
// retried with capped backoff: metrics are never a reason to stop the agent.
func (s *Server) Serve(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.logger()}, Registry: s.Registry}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "etcd-agent metrics: %s\n", Path)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}

	b := backoff.Backoff{Min: time.Second, Max: time.Minute}
	for {
		l, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.Address)
		if err == nil {
			s.onListen(nil)
			s.logger().Info("serving metrics", "url", "http://"+l.Addr().String()+Path)
			go func() {
				<-ctx.Done()
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve metrics on %s: %w", s.Address, err)
			}
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		err = fmt.Errorf("listen for metrics on %s: %w", s.Address, err)
		s.onListen(err)
		wait := b.Next()
		s.logger().Warn("metrics endpoint not serving; retrying", "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (s *Server) onListen(err error) {
	if s.OnListen != nil {
		s.OnListen(err)
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// slogPrinter passes promhttp's error log to slog.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }
