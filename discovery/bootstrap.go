package discovery

import (
	"context"
	"log/slog"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/backoff"
)

// watchRound bounds one wait for new registrations; the registry is re-read
// after it, so a lost watch costs at most this long.
const watchRound = 15 * time.Second

// registry is the I/O a bootstrap needs from one discovery registry. Every
// method is one bounded network step; bootstrapLoop retries them.
type registry interface {
	// read returns the size and registrations, or a size error (ErrNoSize,
	// ErrBadSize) marked permanent.
	read(ctx context.Context) (snapshot, error)
	// register creates key id with value unless it exists, and returns the
	// existing value when it does.
	register(ctx context.Context, id, value string) (existing string, created bool, err error)
	// waitChange returns when the registry may have changed after
	// revision rev; it may also return early for no reason.
	waitChange(ctx context.Context, rev int64) error
}

// bootstrapLoop is the algorithm shared by V2 and V3: read, register self
// unless already there (or the registry is full without us), then wait until
// the registry is full.
type bootstrapLoop struct {
	reg      registry
	token    string // Result.Token, also what selfID was computed with
	self     Member // canonical
	selfID   string
	lg       *slog.Logger
	retry    retrier
	reporter reporter
}

func newBootstrapLoop(reg registry, token, what string, self Member, selfID string, lg *slog.Logger, progress func(Progress)) *bootstrapLoop {
	b := &bootstrapLoop{reg: reg, token: token, self: self, selfID: selfID, lg: lg, reporter: reporter{fn: progress}}
	b.retry = retrier{
		What:    what,
		Backoff: backoff.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second},
		Logger:  lg,
		Report:  b.reporter.problem,
	}
	return b
}

func (b *bootstrapLoop) run(ctx context.Context) (Result, error) {
	for {
		snap, st, err := b.look(ctx)
		if err != nil {
			return Result{}, err
		}
		if !st.SelfRegistered {
			if st.Full() {
				b.reporter.progress(st.Progress())
				b.lg.Info("discovery registry is full without this node: join the existing cluster",
					"members", st.Result(b.token).InitialCluster())
				return st.Result(b.token), nil
			}
			if err := b.register(ctx); err != nil {
				return Result{}, err
			}
			continue // re-read: others may have registered meanwhile
		}
		b.reporter.progress(st.Progress())
		if st.Full() {
			b.lg.Info("discovery registry is full", "self", st.SelfWins, "members", st.Result(b.token).InitialCluster())
			return st.Result(b.token), nil
		}
		b.lg.Info("waiting for members in discovery", "registered", len(st.Winners), "size", st.Size)
		if err := b.wait(ctx, snap.Revision); err != nil {
			return Result{}, err
		}
	}
}

// look reads the registry (retrying while unreachable) and assesses it.
func (b *bootstrapLoop) look(ctx context.Context) (snapshot, standing, error) {
	var snap snapshot
	err := b.retry.Do(ctx, "read registry", func(ctx context.Context) error {
		var err error
		snap, err = b.reg.read(ctx)
		return err
	})
	if err != nil {
		return snapshot{}, standing{}, err
	}
	for _, rej := range snap.Rejected {
		b.lg.Warn("skipping malformed discovery registration", "err", rej)
	}
	st, err := assess(snap.Size, snap.Regs, b.self, b.selfID)
	return snap, st, err
}

// register writes self's key. An existing key holding our value is our own
// earlier registration and is reused; any other value is a conflict.
func (b *bootstrapLoop) register(ctx context.Context) error {
	value := registrationValue(b.self)
	return b.retry.Do(ctx, "register "+value, func(ctx context.Context) error {
		existing, created, err := b.reg.register(ctx, b.selfID, value)
		switch {
		case err != nil:
			return err
		case created:
			b.lg.Info("registered in discovery", "id", b.selfID, "value", value)
		case existing != value:
			return permanent(conflictf("register %s as member %s: the registry already holds %q under that ID: two nodes share one peer URL",
				value, b.selfID, existing))
		default:
			b.lg.Info("found own earlier registration in discovery", "id", b.selfID)
		}
		return nil
	})
}

// wait waits for a change after rev for at most watchRound. Failures only
// end the wait: the next read retries and reports them.
func (b *bootstrapLoop) wait(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, watchRound)
	defer cancel()
	if err := b.reg.waitChange(wctx, rev); err != nil && wctx.Err() == nil {
		b.lg.Debug("discovery wait ended early", "err", err)
		// Do not spin on a watch that fails at once.
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return ctx.Err()
}

// reporter calls the caller's progress callback when what it would say
// changes.
type reporter struct {
	fn   func(Progress)
	last Progress
	sent bool
}

func (p *reporter) progress(pr Progress) {
	if p.fn == nil || (p.sent && p.last == pr) {
		return
	}
	p.last, p.sent = pr, true
	p.fn(pr)
}

// problem reports the last known counts with a problem attached.
func (p *reporter) problem(msg string) {
	pr := p.last
	pr.Problem = msg
	p.progress(pr)
}
