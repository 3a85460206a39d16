package agent

import (
	"log/slog"
	"slices"

	"github.com/etcd-agent/etcd-agent/agent/sidefile"
)

// The cluster's client URLs as last seen, kept beside the data dir
// (sidefile.EndpointsPath), so a learner restarted before its promotion can
// reach the other members (a learner cannot list members itself).

func endpointsPath(dataDir string) string { return sidefile.EndpointsPath(dataDir) }

func readEndpoints(dataDir string) []string { return sidefile.ReadEndpoints(dataDir) }

func writeEndpoints(dataDir string, log *slog.Logger, eps []string) {
	if err := sidefile.WriteEndpoints(dataDir, eps); err != nil {
		log.Debug("remember cluster endpoints", "err", err)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
