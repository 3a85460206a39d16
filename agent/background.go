package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// background drives a job whose round can take long (a snapshot of a large
// database) from the supervise loop until the loop's job table does: C ticks
// every `every` (never when every is 0); tick starts a round on its own
// goroutine unless one still runs, so the loop keeps petting the watchdog
// and rounds never overlap; stop cancels a running round and waits for it,
// so nothing of the job runs once supervision ended.
type background struct {
	C    <-chan time.Time
	tick func()
	stop func()
}

func (a *Agent) inBackground(ctx context.Context, every time.Duration, run func(context.Context) error) background {
	if every <= 0 {
		return background{tick: func() {}, stop: func() {}}
	}
	t := time.NewTicker(every)
	ctx, cancel := context.WithCancel(ctx)
	var running atomic.Bool
	var wg sync.WaitGroup
	return background{
		C: t.C,
		tick: func() {
			if !running.CompareAndSwap(false, true) {
				return
			}
			wg.Go(func() {
				defer running.Store(false)
				if err := run(ctx); err != nil && ctx.Err() == nil {
					a.log.Warn("job round failed", "err", err)
				}
			})
		},
		stop: func() {
			t.Stop()
			cancel()
			wg.Wait()
		},
	}
}
