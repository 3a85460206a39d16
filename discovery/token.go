package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// adminTimeout bounds NewToken and ShowToken when ctx has a later deadline.
const adminTimeout = 10 * time.Second

// NewToken creates a registry for a cluster of size members on the discovery
// cluster c and returns its random token. The token doubles as the new
// cluster's initial cluster token. size must be at least 1; see SizeWarning
// for sizes that work but are unwise.
func NewToken(ctx context.Context, c *clientv3.Client, size int) (string, error) {
	if size < 1 {
		return "", fmt.Errorf("create discovery token: size %d: want at least 1 member", size)
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("create discovery token: %w", err)
	}
	token := hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	key := sizeKey(token)
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, fmt.Sprint(size))).
		Commit()
	if err != nil {
		return "", fmt.Errorf("create discovery token: write %s: %w", key, err)
	}
	if !resp.Succeeded {
		return "", fmt.Errorf("create discovery token: %s already exists", key)
	}
	return token, nil
}

// SizeWarning returns why a cluster size is unwise, or "" when it is fine.
func SizeWarning(size int) string {
	switch {
	case size < 1:
		return fmt.Sprintf("size %d is not a cluster: use 3 or 5", size)
	case size == 1:
		return "a 1-member cluster survives no failure: use 3 or 5 for production"
	case size%2 == 0:
		return fmt.Sprintf("%d members tolerate no more failures than %d (quorum %d) and add write latency: use an odd size",
			size, size-1, size/2+1)
	case size > 7:
		return fmt.Sprintf("%d voting members slow every write; etcd recommends at most 7", size)
	}
	return ""
}

// ShowToken reads token's registry on the discovery cluster c: its size and
// every well-formed registration in create-revision order. The first size of
// them are the founding members; later ones registered after it was full.
func ShowToken(ctx context.Context, c *clientv3.Client, token string) (size int, members []Registration, err error) {
	if err := checkToken(token); err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	snap, err := readRegistry(ctx, c, token)
	if err != nil {
		return 0, nil, fmt.Errorf("show discovery token: %w", err)
	}
	return snap.Size, snap.Regs, nil
}
