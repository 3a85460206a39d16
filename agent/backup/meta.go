package backup

import (
	"encoding/json"
	"fmt"
	"time"
)

// Meta describes one snapshot. It is written as NAME.meta.json beside the
// snapshot and is what Fetch and Verify check the snapshot against.
type Meta struct {
	// Name is the snapshot's name (see Name).
	Name string `json:"name"`
	// Cluster is the cluster's configured name; ClusterID etcd's cluster ID
	// in hex.
	Cluster   string `json:"cluster"`
	ClusterID string `json:"clusterID"`
	// Generation counts the recoveries behind the cluster: 0 for a cluster
	// as bootstrapped, N for the cluster the Nth recovery made (from the
	// recovery record the cluster holds at Revision). Snapshots order by
	// Generation, then Revision (see Newer); absent in metadata written
	// before it existed: 0.
	Generation int `json:"generation"`
	// Revision is the store revision the snapshot holds; CompactRevision
	// the revision it was compacted to (0: never).
	Revision        int64 `json:"revision"`
	CompactRevision int64 `json:"compactRevision"`
	// KeyCount and HashKV are the source member's key count and HashKV at
	// Revision: a restore must reproduce both.
	KeyCount int64  `json:"keyCount"`
	HashKV   uint32 `json:"hashKV"`
	// Members is the member list when the snapshot was taken.
	Members []Member `json:"members"`
	// EtcdVersion is the source member's server version; StorageVersion the
	// snapshot's storage version (what etcdutl needs to restore it).
	EtcdVersion    string `json:"etcdVersion"`
	StorageVersion string `json:"storageVersion,omitempty"`
	// SHA256 (hex) is the database's sha256 as etcd computed it: the last
	// 32 bytes of NAME.db, the sha256 of the bytes before them (`head -c -32
	// NAME.db | sha256sum`). Size is NAME.db's size.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// TakenBy is the member name of the agent that took it; Reason why
	// ("scheduled", "before adding a member", "manual", …).
	TakenBy string    `json:"takenBy"`
	Reason  string    `json:"reason,omitempty"`
	Time    time.Time `json:"time"`
}

// Member is one cluster member as recorded in Meta.
type Member struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	Learner    bool     `json:"learner,omitempty"`
}

// Marshal renders the metadata file.
func (m Meta) Marshal() []byte {
	b, _ := json.MarshalIndent(m, "", "  ") // plain data: cannot fail
	return append(b, '\n')
}

// ParseMeta reads a metadata file's content; what names where it came from.
func ParseMeta(b []byte, what string) (Meta, error) {
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("snapshot metadata %s: %w", what, err)
	}
	if m.SHA256 == "" || m.Size <= 0 {
		return Meta{}, fmt.Errorf("snapshot metadata %s has no sha256 or size: not written by etcd-agent", what)
	}
	return m, nil
}

// Newer reports whether a holds a later state than b: a later cluster
// generation, else a higher revision, and only between equals the later
// time (the taking node's clock says nothing about which state is newer).
func Newer(a, b Meta) bool {
	if a.Generation != b.Generation {
		return a.Generation > b.Generation
	}
	if a.Revision != b.Revision {
		return a.Revision > b.Revision
	}
	return a.Time.After(b.Time)
}
