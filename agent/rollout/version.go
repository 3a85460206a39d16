package rollout

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is an etcd version, major.minor.patch.
type Version struct {
	Major, Minor, Patch int
}

func (v Version) String() string { return fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch) }

// minor is "3.6": what etcd's cluster version and downgrade target name.
func (v Version) minor() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// ParseVersion reads "v3.6.16", "3.6.16" or "3.6" (etcd's cluster version
// and downgrade target have no patch, or patch 0). Anything after the patch
// number ("-rc.0") is ignored.
func ParseVersion(s string) (Version, error) {
	parts := strings.SplitN(strings.TrimPrefix(s, "v"), ".", 3)
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR[.PATCH]", s)
	}
	if len(parts) == 3 {
		parts[2], _, _ = strings.Cut(parts[2], "-")
	} else {
		parts = append(parts, "0")
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR[.PATCH]", s)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

// ImageVersion is the etcd version an image's tag names
// ("gcr.io/etcd-development/etcd:v3.7.3" is v3.7.3), the only version the
// agent can know before it runs the image.
func ImageVersion(image string) (Version, error) {
	name, _, _ := strings.Cut(image, "@")
	slash := strings.LastIndex(name, "/")
	colon := strings.LastIndex(name, ":")
	if colon <= slash {
		return Version{}, fmt.Errorf("image %s has no tag naming its etcd version", image)
	}
	v, err := ParseVersion(name[colon+1:])
	if err != nil {
		return Version{}, fmt.Errorf("image %s: the tag does not name an etcd version: %w", image, err)
	}
	return v, nil
}

// CheckUpgrade applies etcd's version rules to running target on a member
// of a cluster at version cluster (etcd's cluster version: the lowest its
// members run, major.minor). downgradeTarget is etcd's enabled downgrade
// target ("3.6"), "" when no downgrade is enabled. It returns "" when the
// change is allowed, else why not and what to do.
//
// The rules, as etcd documents them: a cluster upgrades one minor version
// at a time (every member runs the new minor before the next); within a
// minor version any patch is allowed, and so is returning a member to the
// cluster's minor mid-upgrade (the cluster version moves only once every
// member runs the new one); a member goes below the cluster version only
// through etcd's downgrade procedure, which lowers the cluster version
// first.
func CheckUpgrade(cluster, target Version, downgradeTarget string) string {
	switch {
	case target.Major != cluster.Major:
		return fmt.Sprintf("etcd %s is another major version than the cluster's %s: etcd does not support that change", target, cluster.minor())
	case target.Minor == cluster.Minor, target.Minor == cluster.Minor+1:
		return ""
	case target.Minor > cluster.Minor+1:
		return fmt.Sprintf("etcd %s skips a minor version: the cluster runs %s and etcd upgrades one minor version at a time; roll out the latest v%d.%d.x first",
			target, cluster.minor(), cluster.Major, cluster.Minor+1)
	case target.Minor == cluster.Minor-1 && downgradeTarget == target.minor():
		return ""
	case target.Minor == cluster.Minor-1:
		return fmt.Sprintf("etcd %s is a downgrade from the cluster's %s: etcd allows it only through its downgrade procedure (`etcdctl downgrade validate %s`, then `etcdctl downgrade enable %s`), after which this change rolls out",
			target, cluster.minor(), target.minor(), target.minor())
	default:
		return fmt.Sprintf("etcd %s is more than one minor version below the cluster's %s: etcd downgrades one minor version at a time", target, cluster.minor())
	}
}
