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
// timeout, so a frozen endpoint costs one timeout and a refused one a few
// milliseconds. When status answered, the client is left open in the probe
// for hashKV.
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

	res.status, res.statusErr = p.status(ctx, cli, ep)
	if res.statusErr != nil {
		cli.Close()
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
// Only members that just answered status are asked, and HashKV reads the
// whole database, so it gets the longer of Timeout and minHashTimeout.
func (p prober) hashKV(ctx context.Context, pr probe, rev int64) hashcheck.Answer {
	timeout := max(p.timeout, minHashTimeout)
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := pb.NewMaintenanceClient(pr.cli.ActiveConnection()).HashKV(qctx, &pb.HashKVRequest{Revision: rev}, grpc.WaitForReady(true))
	if err != nil {
		err = clientv3.ContextError(qctx, err)
		if errors.Is(err, context.DeadlineExceeded) {
			err = noAnswer{timeout: timeout, err: err}
		}
	}
	return hashcheck.FromHashKV(pr.endpoint, pr.status.GetHeader().GetMemberId(), resp, err)
}

// minHashTimeout bounds a HashKV call: hashing a database of a few GiB
// takes seconds.
const minHashTimeout = 5 * time.Second

// diagnoseAfter is how long a status call may go unanswered before a
// direct TCP+TLS dial runs beside it to find out why: a refused connection
// or a rejected certificate then ends the probe at once instead of at the
// deadline, and a frozen member's row says what the dial saw.
const diagnoseAfter = 150 * time.Millisecond

// status asks the endpoint for its status over the client's own connection
// (clientv3's Maintenance.Status would dial a second one). gRPC only says
// "deadline exceeded" for an endpoint it cannot reach, so a diagnosis dial
// runs beside a call that is slow to answer (see diagnoseAfter).
func (p prober) status(ctx context.Context, cli *clientv3.Client, ep string) (*pb.StatusResponse, error) {
	qctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	type answer struct {
		resp *pb.StatusResponse
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Status(qctx, &pb.StatusRequest{}, grpc.WaitForReady(true))
		answered <- answer{resp, err}
	}()
	hedge := time.NewTimer(min(diagnoseAfter, p.timeout/2))
	defer hedge.Stop()
	var diagnosed chan diagnosis
	note := ""
	for {
		select {
		case a := <-answered:
			if a.err == nil {
				return a.resp, nil
			}
			err := p.describe(clientv3.ContextError(qctx, a.err))
			if diagnosed != nil {
				// The dial shares the call's deadline: it is done or about to be.
				note = (<-diagnosed).note
			}
			if note != "" {
				err = fmt.Errorf("%w (%s)", err, note)
			}
			return nil, fmt.Errorf("get status: %w", err)
		case <-hedge.C:
			diagnosed = make(chan diagnosis, 1)
			go func() { diagnosed <- p.diagnose(qctx, ep) }()
		case d := <-diagnosed:
			if d.fatal != nil {
				return nil, fmt.Errorf("get status: %w", d.fatal)
			}
			note, diagnosed = d.note, nil
		}
	}
}

// diagnosis is what a direct dial found: a fatal error that no waiting
// fixes (refused, certificate rejected), or a note on why the call waits.
type diagnosis struct {
	fatal error
	note  string
}

// diagnose dials ep over TCP, then TLS, until ctx ends. A frozen process
// (SIGSTOP, swapping) still has its socket accept TCP in the kernel, but
// never answers the TLS handshake.
func (p prober) diagnose(ctx context.Context, ep string) diagnosis {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return diagnosis{}
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		if ctx.Err() != nil {
			return diagnosis{note: "TCP connect gets no answer: host down or packets dropped"}
		}
		return diagnosis{fatal: err}
	}
	defer conn.Close()
	if u.Scheme != "https" {
		return diagnosis{note: "TCP connects fine: etcd is up but not answering"}
	}
	cfg := p.tls.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.ServerName = u.Hostname()
	if err := tls.Client(conn, cfg).HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			return diagnosis{note: "TCP connects, but the TLS handshake gets no answer: the etcd process is frozen, swapping or overloaded"}
		}
		return diagnosis{fatal: fmt.Errorf("TLS handshake: %w", err)}
	}
	return diagnosis{note: "TCP and TLS connect fine: etcd is up but not answering"}
}

// describe turns a bare deadline into words that name the timeout.
func (p prober) describe(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return noAnswer{timeout: p.timeout, err: err}
	}
	return err
}

// noAnswer is a call that hit its deadline: "no answer in 1s", still
// matching context.DeadlineExceeded.
type noAnswer struct {
	timeout time.Duration
	err     error
}

func (e noAnswer) Error() string { return "no answer in " + e.timeout.String() }
func (e noAnswer) Unwrap() error { return e.err }
