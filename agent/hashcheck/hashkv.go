package hashcheck

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CallTimeout bounds each call CompareHashKV makes (one member list, then per
// endpoint one status and one HashKV, each round in parallel).
const CallTimeout = 5 * time.Second

// CompareHashKV compares the HashKV of the cluster's voting members at a
// common revision and never fails as a whole: what went wrong is in the
// results and the Description.
//
// It asks each of endpoints (client URLs; nil: the first client URL of every
// started member in cli's member list) for its status, takes the lowest
// current revision among the voters that answered (CommonRevision), asks each
// of them for HashKV at that revision, and applies Compare. A learner, a
// member that does not answer, is behind or has compacted past the revision
// is "not compared", never a mismatch. Mismatch is true only when two members
// with the same compact revision hash differently: their data diverged.
//
// Each call has its own CallTimeout (or ctx's deadline, if sooner), and calls
// to different endpoints run in parallel, so a dead member costs at most three
// timeouts in all. cli is used as it is (its TLS, its dial timeout).
func CompareHashKV(ctx context.Context, cli *clientv3.Client, endpoints []string) HashCheck {
	names := map[uint64]string{}
	fromList := endpoints == nil
	lctx, cancel := context.WithTimeout(ctx, CallTimeout)
	list, err := cli.MemberList(lctx)
	cancel()
	switch {
	case err == nil:
		for _, m := range list.Members {
			names[m.ID] = m.Name
			if fromList && len(m.ClientURLs) > 0 {
				endpoints = append(endpoints, m.ClientURLs[0])
			}
		}
	case fromList:
		return HashCheck{Description: fmt.Sprintf("HashKV not compared: list members: %v", err)}
	}

	statuses := make([]*clientv3.StatusResponse, len(endpoints))
	errs := make([]error, len(endpoints))
	parallel(len(endpoints), func(i int) {
		cctx, cancel := context.WithTimeout(ctx, CallTimeout)
		defer cancel()
		statuses[i], errs[i] = cli.Status(cctx, endpoints[i])
	})
	var revs []int64
	for i, st := range statuses {
		if errs[i] == nil && !st.IsLearner {
			revs = append(revs, st.Header.GetRevision())
		}
	}
	rev := CommonRevision(revs...)

	answers := make([]Answer, len(endpoints))
	parallel(len(endpoints), func(i int) {
		a := Answer{Endpoint: strings.TrimSuffix(endpoints[i], "/")}
		st := statuses[i]
		switch {
		case errs[i] != nil:
			a.Err = fmt.Errorf("get status: %w", errs[i])
		case st.IsLearner:
			a.MemberID, a.Err = st.Header.GetMemberId(), ErrLearner
		default:
			a.MemberID = st.Header.GetMemberId()
			cctx, cancel := context.WithTimeout(ctx, CallTimeout)
			defer cancel()
			resp, err := cli.HashKV(cctx, endpoints[i], rev)
			a.setHashKV((*pb.HashKVResponse)(resp), err)
		}
		a.Name = names[a.MemberID]
		answers[i] = a
	})
	return Compare(rev, answers)
}

// setHashKV fills a from one HashKV response or error.
func (a *Answer) setHashKV(resp *pb.HashKVResponse, err error) {
	if err != nil {
		a.Err = fmt.Errorf("hash kv: %w", err)
		return
	}
	a.Hash, a.CompactRevision = resp.Hash, resp.CompactRevision
}

// FromHashKV is the Answer of the member behind endpoint, given its HashKV
// response or error (as clientv3 returns them, or passed through
// clientv3.ContextError).
func FromHashKV(endpoint string, memberID uint64, resp *pb.HashKVResponse, err error) Answer {
	a := Answer{Endpoint: endpoint, MemberID: memberID}
	a.setHashKV(resp, err)
	return a
}

// parallel runs f(0..n-1) at once and waits for all.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { f(i) })
	}
	wg.Wait()
}
