package dnsrecords

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-agent/etcd-agent/agent/keys"
	"github.com/etcd-agent/etcd-agent/agent/problem"
)

// Shared is the outcome of the writer's latest round, kept in the cluster
// (keys.DNSRecords) so that every agent shows it in its node's status.
type Shared struct {
	// Writer is the member whose agent wrote it (the leader's).
	Writer string `json:"writer"`
	// Code and Text are the round's problem; Code is empty when the zone
	// is in step.
	Code problem.Code `json:"code,omitempty"`
	Text string       `json:"text,omitempty"`
	// Since is when this outcome was first found.
	Since time.Time `json:"since"`
}

// sharedOf is the record of a round that ended with err.
func sharedOf(writer string, err error, now time.Time) Shared {
	s := Shared{Writer: writer, Since: now.UTC()}
	if p, ok := problemOf(err); ok {
		s.Code, s.Text = p.Code, p.Text
	}
	return s
}

// Problem is the record as a problem in a node's report (false when the
// zone was in step).
func (s Shared) Problem() (problem.Problem, bool) {
	if s.Code == "" {
		return problem.Problem{}, false
	}
	kind := problem.DNSRecordsFailed
	for _, k := range problem.Known() {
		if k.Code == s.Code {
			kind = k
		}
	}
	return kind.Newf("", "%s (found by %s's agent)", s.Text, s.Writer), true
}

// readShared reads the record (zero when there is none).
func readShared(ctx context.Context, cli *clientv3.Client) (Shared, error) {
	resp, err := cli.Get(ctx, keys.DNSRecords)
	if err != nil {
		return Shared{}, fmt.Errorf("read %s: %w", keys.DNSRecords, err)
	}
	var s Shared
	if len(resp.Kvs) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		return Shared{}, fmt.Errorf("read %s: %w", keys.DNSRecords, err)
	}
	return s, nil
}

// writeShared writes s unless the record already says the same (same
// writer, same outcome): a round in step writes nothing.
func writeShared(ctx context.Context, cli *clientv3.Client, s Shared) error {
	have, err := readShared(ctx, cli)
	if err == nil && have.Writer == s.Writer && have.Code == s.Code && have.Text == s.Text {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := cli.Put(ctx, keys.DNSRecords, string(b)); err != nil {
		return fmt.Errorf("write %s: %w", keys.DNSRecords, err)
	}
	return nil
}
