package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Formation records: a registry keeps, beside the registrations, what a node
// without data must know before it may bootstrap:
//
//	<registry>/_agent/started/<member id hex>  written by a founder before its
//	                                           etcd first starts (state=new)
//	<registry>/_agent/formed                   written once the cluster had a
//	                                           leader, before the first READY=1
//
// Both are written once and never overwritten. etcd's own discovery ignores
// them: v3 discovery reads only _config/size and members/, and in the v2
// keys API a key whose name starts with "_" is hidden from the listing that
// v2 discovery counts members in.

// Formed says who recorded the cluster's formation, and when.
type Formed struct {
	ClusterID string    `json:"clusterID"` // hex
	By        string    `json:"by"`        // member name
	At        time.Time `json:"at"`
}

func (f Formed) String() string {
	return fmt.Sprintf("cluster %s, recorded by %s at %s", f.ClusterID, f.By, f.At.UTC().Format(time.RFC3339))
}

// Started is a founder's record that its etcd was about to start.
type Started struct {
	Name    string    `json:"name"`
	PeerURL string    `json:"peerURL"`
	At      time.Time `json:"at"`
}

// Formation is what a registry records about the cluster's formation.
type Formation struct {
	Formed  *Formed            // nil: not recorded
	Started map[string]Started // by member ID (hex)
}

// FormationBook is a discovery source that records formation (V3, V2).
// Every method is one bounded network step; callers retry.
type FormationBook interface {
	// Formation reads the records.
	Formation(ctx context.Context) (Formation, error)
	// RecordStarted records that self is about to start etcd as a founder
	// (its member ID under this registry's token). Idempotent.
	RecordStarted(ctx context.Context, self Member, at time.Time) error
	// ForgetStarted deletes self's started record. Only for a start that
	// provably never ran: etcd failed to start and left no WAL, so the
	// member never voted.
	ForgetStarted(ctx context.Context, self Member) error
	// RecordFormed records the formation unless it is recorded already.
	RecordFormed(ctx context.Context, f Formed) error
	// MemberID is self's member ID (hex) under this registry's token.
	MemberID(self Member) (string, error)
}

var (
	_ FormationBook = (*V3)(nil)
	_ FormationBook = (*V2)(nil)
)

func formationPrefix(token string) string { return registryPrefix + "/" + token + "/_agent/" }

// MemberID is self's member ID (hex) under d.Token.
func (d *V3) MemberID(self Member) (string, error) {
	self, err := canonical(self)
	if err != nil {
		return "", err
	}
	return MemberID(d.Token, self)
}

// Formation reads the formation records under d.Token.
func (d *V3) Formation(ctx context.Context) (Formation, error) {
	var f Formation
	err := d.request(ctx, func(ctx context.Context, c *clientv3.Client) error {
		var err error
		f, err = ReadFormation(ctx, c, d.Token)
		return err
	})
	return f, err
}

// ReadFormation reads the formation records under a v3 token (also for
// `etcd-agent discovery show`).
func ReadFormation(ctx context.Context, c *clientv3.Client, token string) (Formation, error) {
	if err := checkToken(token); err != nil {
		return Formation{}, err
	}
	prefix := formationPrefix(token)
	resp, err := c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return Formation{}, fmt.Errorf("read formation records of token %s: %w", token, err)
	}
	kvs := map[string][]byte{}
	for _, kv := range resp.Kvs {
		kvs[strings.TrimPrefix(string(kv.Key), prefix)] = kv.Value
	}
	return parseFormation(kvs)
}

// RecordStarted writes _agent/started/<id> unless it exists.
func (d *V3) RecordStarted(ctx context.Context, self Member, at time.Time) error {
	id, value, err := startedRecord(d.Token, self, at)
	if err != nil {
		return err
	}
	return d.putIfAbsent(ctx, formationPrefix(d.Token)+"started/"+id, value)
}

// ForgetStarted deletes _agent/started/<id>.
func (d *V3) ForgetStarted(ctx context.Context, self Member) error {
	id, err := d.MemberID(self)
	if err != nil {
		return err
	}
	key := formationPrefix(d.Token) + "started/" + id
	return d.request(ctx, func(ctx context.Context, c *clientv3.Client) error {
		if _, err := c.Delete(ctx, key); err != nil {
			return fmt.Errorf("forget %s: %w", key, err)
		}
		return nil
	})
}

// RecordFormed writes _agent/formed unless it exists.
func (d *V3) RecordFormed(ctx context.Context, f Formed) error {
	b, _ := json.Marshal(f)
	return d.putIfAbsent(ctx, formationPrefix(d.Token)+"formed", b)
}

func (d *V3) putIfAbsent(ctx context.Context, key string, value []byte) error {
	return d.request(ctx, func(ctx context.Context, c *clientv3.Client) error {
		_, err := c.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, string(value))).
			Commit()
		if err != nil {
			return fmt.Errorf("record %s: %w", key, err)
		}
		return nil
	})
}

// MemberID is self's member ID (hex) under the discovery URL, the v2 token.
func (d *V2) MemberID(self Member) (string, error) {
	self, err := canonical(self)
	if err != nil {
		return "", err
	}
	return MemberID(d.URL, self)
}

// Formation reads <url>/_agent recursively.
func (d *V2) Formation(ctx context.Context) (Formation, error) {
	var f Formation
	err := d.request(ctx, func(ctx context.Context, c *v2Client) error {
		resp, err := c.do(ctx, http.MethodGet, "_agent", url.Values{"recursive": {"true"}}, nil)
		if isV2Code(err, v2KeyNotFound) {
			f = Formation{Started: map[string]Started{}}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read formation records at %s: %w", c.base.Redacted(), err)
		}
		kvs := map[string][]byte{}
		var walk func(n v2Node)
		walk = func(n v2Node) {
			for _, child := range n.Nodes {
				walk(child)
			}
			if !n.Dir {
				// Keys come back as store paths: .../<token>/_agent/<rel>.
				if _, rel, ok := strings.Cut(n.Key, "/_agent/"); ok {
					kvs[rel] = []byte(n.Value)
				}
			}
		}
		if resp.Node != nil {
			walk(*resp.Node)
		}
		f, err = parseFormation(kvs)
		return err
	})
	return f, err
}

// RecordStarted creates <url>/_agent/started/<id> unless it exists.
func (d *V2) RecordStarted(ctx context.Context, self Member, at time.Time) error {
	id, value, err := startedRecord(d.URL, self, at)
	if err != nil {
		return err
	}
	return d.createIfAbsent(ctx, "_agent/started/"+id, value)
}

// ForgetStarted deletes <url>/_agent/started/<id>.
func (d *V2) ForgetStarted(ctx context.Context, self Member) error {
	id, err := d.MemberID(self)
	if err != nil {
		return err
	}
	return d.request(ctx, func(ctx context.Context, c *v2Client) error {
		if _, err := c.do(ctx, http.MethodDelete, "_agent/started/"+id, nil, nil); err != nil && !isV2Code(err, v2KeyNotFound) {
			return fmt.Errorf("forget started record at %s: %w", c.base.Redacted(), err)
		}
		return nil
	})
}

// RecordFormed creates <url>/_agent/formed unless it exists.
func (d *V2) RecordFormed(ctx context.Context, f Formed) error {
	b, _ := json.Marshal(f)
	return d.createIfAbsent(ctx, "_agent/formed", b)
}

func (d *V2) createIfAbsent(ctx context.Context, key string, value []byte) error {
	return d.request(ctx, func(ctx context.Context, c *v2Client) error {
		if _, _, err := c.create(ctx, key, string(value)); err != nil {
			return fmt.Errorf("record %s at %s: %w", key, c.base.Redacted(), err)
		}
		return nil
	})
}

// request runs one bounded request against the v2 discovery URL.
func (d *V2) request(ctx context.Context, fn func(ctx context.Context, c *v2Client) error) error {
	c, err := newV2Client(d.URL, d.HTTPClient)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, positiveOr(d.RequestTimeout, defaultRequestTimeout))
	defer cancel()
	return fn(ctx, c)
}

// startedRecord is self's started record under token: its key element (the
// member ID) and value.
func startedRecord(token string, self Member, at time.Time) (id string, value []byte, err error) {
	self, err = canonical(self)
	if err != nil {
		return "", nil, err
	}
	if id, err = MemberID(token, self); err != nil {
		return "", nil, err
	}
	value, _ = json.Marshal(Started{Name: self.Name, PeerURL: self.PeerURL, At: at.UTC()})
	return id, value, nil
}

// parseFormation reads the records keyed relative to _agent/. An unreadable
// record still counts: its presence is what fences.
func parseFormation(kvs map[string][]byte) (Formation, error) {
	f := Formation{Started: map[string]Started{}}
	for key, value := range kvs {
		switch {
		case key == "formed":
			var fm Formed
			if err := json.Unmarshal(value, &fm); err != nil {
				fm = Formed{By: fmt.Sprintf("unreadable record %.80q", value)}
			}
			f.Formed = &fm
		case strings.HasPrefix(key, "started/"):
			var s Started
			if err := json.Unmarshal(value, &s); err != nil {
				s = Started{Name: fmt.Sprintf("unreadable record %.80q", value)}
			}
			f.Started[strings.TrimPrefix(key, "started/")] = s
		}
	}
	return f, nil
}
