package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Files the agent keeps next to the data dir (not inside it: etcd owns that,
// and `leave` wipes it).

// endpointsPath holds the cluster's client URLs as last seen, so a learner
// restarted before its promotion can reach the other members (a learner
// cannot list members itself).
func endpointsPath(dataDir string) string { return dataDir + ".endpoints" }

// LeftMarkerPath is written by `leave` before the member is removed. While
// it exists the agent neither restarts etcd nor joins again; delete it to
// let the node join as a new member.
func LeftMarkerPath(dataDir string) string { return dataDir + ".left" }

func readEndpoints(dataDir string) []string {
	b, err := os.ReadFile(endpointsPath(dataDir))
	if err != nil {
		return nil
	}
	var eps []string
	if json.Unmarshal(b, &eps) != nil {
		return nil
	}
	return eps
}

func writeEndpoints(dataDir string, log *slog.Logger, eps []string) {
	if len(eps) == 0 || slices.Equal(eps, readEndpoints(dataDir)) {
		return
	}
	b, _ := json.Marshal(eps)
	tmp := endpointsPath(dataDir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		log.Debug("remember cluster endpoints", "err", err)
		return
	}
	if err := os.Rename(tmp, endpointsPath(dataDir)); err != nil {
		log.Debug("remember cluster endpoints", "err", err)
	}
}

// leftMarker reports whether this node has left (or is leaving) the cluster.
func leftMarker(dataDir string) (bool, string) {
	b, err := os.ReadFile(LeftMarkerPath(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return false, ""
	}
	if err != nil {
		return true, fmt.Sprintf("cannot read %s: %v", LeftMarkerPath(dataDir), err)
	}
	return true, string(b)
}

// clientURLsOf lists the members' client URLs, without the member whose
// peer URL is selfPeerURL.
func clientURLsOf(members []*etcdserverpb.Member, selfPeerURL string) []string {
	var eps []string
	for _, m := range members {
		if slices.Contains(m.PeerURLs, selfPeerURL) {
			continue
		}
		eps = append(eps, m.ClientURLs...)
	}
	slices.Sort(eps)
	return eps
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
