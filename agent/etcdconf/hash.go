package etcdconf

import (
	"crypto/sha256"
	"encoding/hex"
)

// Hash identifies the running configuration of the member: a hex SHA-256 over
// the flags that matter on every start plus extra (a runtime adds its image,
// mounts and limits). A running instance with the same Hash is adopted as is.
//
// The bootstrap-only settings (InitialCluster, InitialClusterState,
// InitialClusterToken) are left out: etcd ignores them once its data dir is
// initialized, and the agent passes different ones on a restart than on the
// first start, which must not restart a healthy member.
func (s Spec) Hash(extra ...string) string {
	h := sha256.New()
	write := func(v string) {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	write("etcdconf/v1")
	for _, f := range s.memberFlags() {
		write(f)
	}
	write("--")
	for _, e := range extra {
		write(e)
	}
	return hex.EncodeToString(h.Sum(nil))
}
