// Package zapslog lets embedded etcd, which logs with zap, write through the
// agent's log/slog logger.
package zapslog

import (
	"context"
	"log/slog"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a zap logger (what embedded etcd logs with) that writes to lg.
// etcd's info messages are chatty, so they become debug records; warnings
// and errors keep their level.
func New(lg *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{lg: lg.With("component", "etcd")})
}

type slogCore struct {
	lg *slog.Logger
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.InfoLevel:
		return slog.LevelDebug
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return c.lg.Enabled(context.Background(), slogLevel(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{lg: c.lg.With(attrs(fields)...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	c.lg.Log(context.Background(), slogLevel(e.Level), e.Message, attrs(fields)...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// attrs converts zap fields to slog key/value pairs in a stable order.
func attrs(fields []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, k, enc.Fields[k])
	}
	return out
}
