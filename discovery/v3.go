package discovery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults for zero-valued timeouts.
const (
	defaultDialTimeout    = 5 * time.Second
	defaultRequestTimeout = 5 * time.Second
)

// V3 discovers members through etcd's own v3 discovery layout on a discovery
// etcd cluster:
//
//	/_etcd/registry/<token>/_config/size           = "N"
//	/_etcd/registry/<token>/members/<member id hex> = "name=peerURL"
//
// The first N registrations by create revision win. The token doubles as the
// initial cluster token, and member IDs are computed by etcd's own code for
// that token, so a plain `etcd --discovery-token T --discovery-endpoints E`
// finds our registrations and we find its.
type V3 struct {
	Endpoints []string    // discovery cluster client URLs
	Token     string      // registry token, from NewToken
	TLS       *tls.Config // nil = plaintext
	// DialTimeout bounds connecting to the discovery cluster; 0 = 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each read or write; 0 = 5s.
	RequestTimeout time.Duration
	Logger         *slog.Logger // nil = discard
}

// Bootstrap registers self under d.Token and waits until the registry is
// full. Unreachable discovery is retried with capped, jittered backoff until
// ctx ends; a missing or bad size and conflicting registrations fail at once.
func (d *V3) Bootstrap(ctx context.Context, self Member, progress func(Progress)) (Result, error) {
	if err := checkToken(d.Token); err != nil {
		return Result{}, fmt.Errorf("bootstrap via v3 discovery: %w", err)
	}
	if len(d.Endpoints) == 0 {
		return Result{}, errors.New("bootstrap via v3 discovery: no discovery endpoints")
	}
	self, err := canonical(self)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v3 discovery: %w", err)
	}
	selfID, err := MemberID(d.Token, self)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v3 discovery: %w", err)
	}
	endpoints := strings.Join(d.Endpoints, ",")
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   d.Endpoints,
		TLS:         d.TLS,
		DialTimeout: positiveOr(d.DialTimeout, defaultDialTimeout),
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v3 discovery: connect to %s: %w", endpoints, err)
	}
	defer c.Close()

	lg := discard(d.Logger).With("discovery", endpoints, "token", d.Token, "member", self.Name, "member_id", selfID)
	reg := &v3Registry{c: c, token: d.Token, timeout: positiveOr(d.RequestTimeout, defaultRequestTimeout)}
	res, err := newBootstrapLoop(reg, d.Token, "discovery at "+endpoints, self, selfID, lg, progress).run(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("bootstrap via v3 discovery token %s: %w", d.Token, err)
	}
	return res, nil
}

// v3Registry is a registry in etcd's v3 discovery layout.
type v3Registry struct {
	c       *clientv3.Client
	token   string
	timeout time.Duration // per request
}

func (r *v3Registry) read(ctx context.Context) (snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	snap, err := readRegistry(ctx, r.c, r.token)
	if isSizeError(err) {
		return snapshot{}, permanent(err)
	}
	return snap, err
}

func (r *v3Registry) register(ctx context.Context, id, value string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	key := memberKey(r.token, id)
	resp, err := r.c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", false, fmt.Errorf("register %s at %s: %w", value, key, err)
	}
	if resp.Succeeded {
		return "", true, nil
	}
	var existing string
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		existing = strings.TrimSpace(string(kvs[0].Value))
	}
	return existing, false, nil
}

// waitChange watches the member keys from rev+1 until an event arrives, the
// watch fails (e.g. the discovery cluster lost its leader) or ctx ends.
func (r *v3Registry) waitChange(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := r.c.Watch(clientv3.WithRequireLeader(ctx), membersPrefix(r.token), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range wch {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", membersPrefix(r.token), err)
		}
		if len(resp.Events) > 0 {
			return nil
		}
	}
	return ctx.Err()
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// clusterEndpointsKey is /_etcd/registry/<token>/_agent/endpoints: the formed
// cluster's client URLs as its agents last published them. etcd's own v3
// discovery reads only _config/size and members/, so it ignores this key.
func clusterEndpointsKey(token string) string {
	return registryPrefix + "/" + token + "/_agent/endpoints"
}

// PublishClusterEndpoints records the cluster's current client URLs under the
// token, so a node that finds the registry full can still reach the cluster
// after every founding member has been replaced.
func (d *V3) PublishClusterEndpoints(ctx context.Context, endpoints []string) error {
	return d.request(ctx, func(ctx context.Context, c *clientv3.Client) error {
		if _, err := c.Put(ctx, clusterEndpointsKey(d.Token), strings.Join(endpoints, ",")); err != nil {
			return fmt.Errorf("publish cluster endpoints for token %s: %w", d.Token, err)
		}
		return nil
	})
}

// ClusterEndpoints returns the client URLs last published for the token's
// cluster, or nil when none were.
func (d *V3) ClusterEndpoints(ctx context.Context) ([]string, error) {
	var eps []string
	err := d.request(ctx, func(ctx context.Context, c *clientv3.Client) error {
		resp, err := c.Get(ctx, clusterEndpointsKey(d.Token))
		if err != nil {
			return fmt.Errorf("read cluster endpoints for token %s: %w", d.Token, err)
		}
		if len(resp.Kvs) > 0 && len(resp.Kvs[0].Value) > 0 {
			eps = strings.Split(string(resp.Kvs[0].Value), ",")
		}
		return nil
	})
	return eps, err
}

// request runs one bounded request with a client to the discovery cluster.
func (d *V3) request(ctx context.Context, fn func(ctx context.Context, c *clientv3.Client) error) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, positiveOr(d.RequestTimeout, defaultRequestTimeout))
	defer cancel()
	return fn(ctx, c)
}

func (d *V3) client() (*clientv3.Client, error) {
	if err := checkToken(d.Token); err != nil {
		return nil, err
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: d.Endpoints, TLS: d.TLS,
		DialTimeout: positiveOr(d.DialTimeout, defaultDialTimeout), Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to discovery at %s: %w", strings.Join(d.Endpoints, ","), err)
	}
	return c, nil
}
