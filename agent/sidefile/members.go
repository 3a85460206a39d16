package sidefile

import (
	"encoding/json"
	"os"
	"slices"
)

// MembersPath is where the member list of the cluster, as last seen healthy,
// is kept: a recovery from this node's member must hear from every one of
// them (or be told they are lost) before it replays one member's WAL.
func MembersPath(dataDir string) string { return beside(dataDir, ".members") }

// Member is one member of the cluster as last seen.
type Member struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"` // hex, as etcdctl prints it
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls,omitempty"`
	Learner    bool     `json:"learner,omitempty"`
}

// Members is the member list of one cluster.
type Members struct {
	ClusterID string   `json:"cluster_id"` // hex
	Members   []Member `json:"members"`
}

// ReadMembers returns the recorded member list; ok is false when none is
// recorded or the file cannot be read.
func ReadMembers(dataDir string) (m Members, ok bool) {
	b, err := os.ReadFile(MembersPath(dataDir))
	if err != nil || json.Unmarshal(b, &m) != nil || m.ClusterID == "" {
		return Members{}, false
	}
	return m, true
}

// WriteMembers records m (members sorted by name) unless it is what is
// recorded.
func WriteMembers(dataDir string, m Members) error {
	m.Members = slices.Clone(m.Members)
	slices.SortFunc(m.Members, func(a, b Member) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	if cur, ok := ReadMembers(dataDir); ok && equalMembers(cur, m) {
		return nil
	}
	return writeJSON(MembersPath(dataDir), m, 0o644)
}

func equalMembers(a, b Members) bool {
	return a.ClusterID == b.ClusterID && slices.EqualFunc(a.Members, b.Members, func(x, y Member) bool {
		return x.Name == y.Name && x.ID == y.ID && x.Learner == y.Learner &&
			slices.Equal(x.PeerURLs, y.PeerURLs) && slices.Equal(x.ClientURLs, y.ClientURLs)
	})
}
