package status

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/etcd-agent/etcd-agent/agent/hashcheck"
)

// healthKey is what the health read asks for, as etcdctl endpoint health
// does. The key need not exist; the read only has to be linearizable.
const healthKey = "health"

// maxDiagnoseTimeout bounds the TCP+TLS dial that explains a silent endpoint.
const maxDiagnoseTimeout = time.Second

// probe is what one endpoint answered. It is raw data; assemble turns it
// into an Endpoint row.
type probe struct {
	endpoint  string
	status    *pb.StatusResponse
	statusErr error
	healthErr error // nil: the linearizable read succeeded
	latency   time.Duration

	// cli stays open for the HashKV round when status answered; Gather
	// closes it.
	cli *clientv3.Client
	// hash is the member's HashKV answer (the HashKV round fills it).
	hash *hashcheck.Answer

	// Only when asked (withList): the member list and the alarms.
	members    []*pb.Member
	membersErr error
	alarms     []*pb.AlarmMember
	alarmsErr  error
}

// prober queries endpoints with one client each.
type prober struct {
	tls     *tls.Config
	timeout time.Duration
}

// run queries ep: status first; when that answers, the health read (and,
// withList, the member list and alarms) in parallel. Every query has its own
// timeout, so a dead endpoint costs one timeout plus a short dial. When
// status answered, the client is left open in the probe for hashKV.
func (p prober) run(ctx context.Context, ep string, withList bool) probe {
	res := probe{endpoint: ep}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{ep},
		TLS:         p.tls,
		DialTimeout: p.timeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		res.statusErr = fmt.Errorf("create client: %w", err)
		return res
	}

	res.status, res.statusErr = p.status(ctx, cli)
	if res.statusErr != nil {
		cli.Close()
		res.statusErr = p.explain(ctx, ep, res.statusErr)
		return res
	}
	res.cli = cli

	var wg sync.WaitGroup
	wg.Go(func() {
		qctx, cancel := context.WithTimeout(ctx, p.timeout)
		defer cancel()
		// A learner serves no linearizable reads; a serializable one shows
		// it is up and applying.
		var opts []clientv3.OpOption
		if res.status.IsLearner {
			opts = append(opts, clientv3.WithSerializable())
		}
		start := time.Now()
		_, err := cli.Get(qctx, healthKey, opts...)
		res.latency = time.Since(start)
		// Permission denied still proves a linearizable round trip.
		if err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
			res.healthErr = p.describe(err)
		}
	})
	if withList {
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			resp, err := cli.MemberList(qctx)
			if err != nil {
				res.membersErr = fmt.Errorf("list members: %w", p.describe(err))
				return
			}
			res.members = resp.Members
		})
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			resp, err := cli.AlarmList(qctx)
			if err != nil {
				res.alarmsErr = fmt.Errorf("list alarms: %w", p.describe(err))
				return
			}
			res.alarms = resp.Alarms
		})
	}
	wg.Wait()
	return res
}

// hashKV asks the endpoint for its HashKV at rev over the probe's connection.
func (p prober) hashKV(ctx context.Context, pr probe, rev int64) hashcheck.Answer {
	qctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	resp, err := pb.NewMaintenanceClient(pr.cli.ActiveConnection()).HashKV(qctx, &pb.HashKVRequest{Revision: rev}, grpc.WaitForReady(true))
	if err != nil {
		err = p.describe(clientv3.ContextError(qctx, err))
	}
	return hashcheck.FromHashKV(pr.endpoint, pr.status.GetHeader().GetMemberId(), resp, err)
}

// status asks the endpoint for its status over the client's own connection
// (clientv3's Maintenance.Status would dial a second one).
func (p prober) status(ctx context.Context, cli *clientv3.Client) (*pb.StatusResponse, error) {
	qctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	resp, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Status(qctx, &pb.StatusRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return nil, fmt.Errorf("get status: %w", p.describe(clientv3.ContextError(qctx, err)))
	}
	return resp, nil
}

// describe turns a bare deadline into words that name the timeout.
func (p prober) describe(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer within %s: %w", p.timeout, err)
	}
	return err
}

// explain adds why a silent endpoint is silent: gRPC waits for a connection
// until the deadline and then only says "deadline exceeded", which hides a
// refused connection or a rejected certificate. A direct TCP+TLS dial finds
// out which.
func (p prober) explain(ctx context.Context, ep string, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	u, perr := url.Parse(ep)
	if perr != nil || u.Host == "" {
		return err
	}
	timeout := min(p.timeout, maxDiagnoseTimeout)
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if u.Scheme != "https" {
		conn, derr := (&net.Dialer{}).DialContext(dctx, "tcp", u.Host)
		if derr != nil {
			return fmt.Errorf("%w (%v)", err, derr)
		}
		conn.Close()
		return err
	}
	cfg := p.tls.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.ServerName = u.Hostname()
	conn, derr := (&tls.Dialer{Config: cfg}).DialContext(dctx, "tcp", u.Host)
	if derr != nil {
		return fmt.Errorf("%w (%v)", err, derr)
	}
	conn.Close()
	return fmt.Errorf("%w (TCP and TLS connect fine: etcd is up but not answering)", err)
}
