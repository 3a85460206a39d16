package discovery

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// V2 discovers members through a v2 discovery URL
// (https://discovery.etcd.io/<token> or
// http(s)://host/v2/keys/_etcd/registry/<token>), speaking the v2 keys
// protocol itself, so it works with etcd versions that no longer have v2
// discovery:
//
//	GET  <url>/_config/size
//	PUT  <url>/<member id hex>?prevExist=false  value=name=peerURL
//	GET  <url>?recursive=true&sorted=true
//	GET  <url>?wait=true&recursive=true&waitIndex=N
//
// Registrations are ordered by createdIndex; the first size win.
//
// Like etcd's own v2 discovery (etcd ≤ 3.6 with --discovery), the cluster
// token, both for member IDs and for Result.Token, is the discovery URL
// exactly as configured. That keeps the agent's registrations and cluster ID
// compatible with plain etcd members bootstrapped from the same URL.
type V2 struct {
	URL        string
	HTTPClient *http.Client // nil = a plain client
	// RequestTimeout bounds each request but the long-polling watch; 0 = 5s.
	RequestTimeout time.Duration
	Logger         *slog.Logger // nil = discard
}

// Bootstrap registers self at d.URL and waits until the registry is full.
// Unreachable discovery is retried with capped, jittered backoff until ctx
// ends; a missing or bad size and conflicting registrations fail at once.
func (d *V2) Bootstrap(ctx context.Context, self Member, progress func(Progress)) (Result, error) {
	c, err := newV2Client(d.URL, d.HTTPClient)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v2 discovery: %w", err)
	}
	self, err = canonical(self)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v2 discovery: %w", err)
	}
	token := d.URL
	selfID, err := MemberID(token, self)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v2 discovery: %w", err)
	}
	lg := discard(d.Logger).With("discovery", c.base.Redacted(), "member", self.Name, "member_id", selfID)
	reg := &v2Registry{c: c, timeout: positiveOr(d.RequestTimeout, defaultRequestTimeout)}
	res, err := newBootstrapLoop(reg, token, "discovery at "+c.base.Redacted(), self, selfID, lg, progress).run(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v2 discovery %s: %w", c.base.Redacted(), err)
	}
	return res, nil
}

// v2Registry adapts v2Client to the registry interface.
type v2Registry struct {
	c       *v2Client
	timeout time.Duration
}

func (r *v2Registry) read(ctx context.Context) (snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	snap, err := r.c.read(ctx)
	if isSizeError(err) {
		return snapshot{}, permanent(err)
	}
	return snap, err
}

func (r *v2Registry) register(ctx context.Context, id, value string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.c.create(ctx, id, value)
}

// waitChange long-polls for the next change after index rev; the caller
// bounds it.
func (r *v2Registry) waitChange(ctx context.Context, rev int64) error {
	return r.c.wait(ctx, rev+1)
}
