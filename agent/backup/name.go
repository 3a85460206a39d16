package backup

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// File suffixes of a snapshot's two objects.
const (
	SnapshotSuffix = ".db"
	MetaSuffix     = ".meta.json"
)

// timeLayout sorts lexically in time order (fixed width, UTC).
const timeLayout = "20060102T150405.000Z"

// Name identifies a snapshot: "<time>_<cluster>_<cluster id>_r<revision>",
// e.g. "20261201T164512.123Z_prod-etcd_8e9e05c52164694d_r1042". Names sort by
// time, so the last of a sorted list is the newest. A cluster name may hold
// "_": the time is the first field, ID and revision the last two.
type Name struct {
	Time      time.Time
	Cluster   string
	ClusterID uint64
	Revision  int64
}

func (n Name) String() string {
	return fmt.Sprintf("%s_%s_%016x_r%d", n.Time.UTC().Format(timeLayout), n.Cluster, n.ClusterID, n.Revision)
}

// ParseName parses a snapshot name, with or without one of the suffixes.
func ParseName(s string) (Name, error) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, SnapshotSuffix), MetaSuffix)
	parts := strings.Split(s, "_")
	if len(parts) > 4 {
		parts = []string{parts[0], strings.Join(parts[1:len(parts)-2], "_"), parts[len(parts)-2], parts[len(parts)-1]}
	}
	if len(parts) != 4 || !strings.HasPrefix(parts[3], "r") {
		return Name{}, fmt.Errorf("%q is not a snapshot name like 20261201T164512.123Z_prod-etcd_8e9e05c52164694d_r1042", s)
	}
	t, err := time.Parse(timeLayout, parts[0])
	if err != nil {
		return Name{}, fmt.Errorf("snapshot name %q: time: %w", s, err)
	}
	id, err := strconv.ParseUint(parts[2], 16, 64)
	if err != nil {
		return Name{}, fmt.Errorf("snapshot name %q: cluster id %q is not hex", s, parts[2])
	}
	rev, err := strconv.ParseInt(parts[3][1:], 10, 64)
	if err != nil {
		return Name{}, fmt.Errorf("snapshot name %q: revision %q is not a number", s, parts[3])
	}
	return Name{Time: t, Cluster: parts[1], ClusterID: id, Revision: rev}, nil
}
