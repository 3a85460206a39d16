package embedded

import (
	goruntime "runtime"
	"sync"

	"go.uber.org/zap/zapcore"
)

// crashHook turns etcd's own panics (its zap Panic logs) into an exit of
// this embedded instance, the way a panic ends an etcd process: the
// goroutine that logged it ends, watch stops etcd, and Wait reports the exit.
// Without it a panic in any etcd goroutine ends the whole agent. (etcd 3.7
// panics, for one, on a Status call that reaches a member between its
// removal and its stop.)
type crashHook struct {
	once  sync.Once
	fatal chan string // buffered 1: the first panic's message
}

func newCrashHook() *crashHook { return &crashHook{fatal: make(chan string, 1)} }

// OnWrite runs after etcd's Panic log was written.
func (h *crashHook) OnWrite(ce *zapcore.CheckedEntry, _ []zapcore.Field) {
	h.once.Do(func() { h.fatal <- ce.Message })
	goruntime.Goexit()
}
