package discovery

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// registryPrefix is where etcd's v3 discovery keeps its registries.
const registryPrefix = "/_etcd/registry"

// sizeKey is /_etcd/registry/<token>/_config/size.
func sizeKey(token string) string { return registryPrefix + "/" + token + "/_config/size" }

// membersPrefix is /_etcd/registry/<token>/members/.
func membersPrefix(token string) string { return registryPrefix + "/" + token + "/members/" }

// memberKey is /_etcd/registry/<token>/members/<member id hex>.
func memberKey(token, id string) string { return membersPrefix(token) + id }

// checkToken rejects tokens that would escape their registry directory.
func checkToken(token string) error {
	if token == "" {
		return fmt.Errorf("check discovery token: token is empty")
	}
	if strings.ContainsAny(token, "/ \t\n") {
		return fmt.Errorf("check discovery token %q: must not contain '/' or spaces", token)
	}
	return nil
}

// parseSize parses a size value; the error says what is wrong and how to fix it.
// fix says how to create a token with a size.
func parseSize(token, key, value string, found bool, fix string) (int, error) {
	if !found {
		return 0, &detailedError{kind: ErrNoSize, msg: fmt.Sprintf(
			"discovery token %s has no size (no key %s): create it with %s", token, key, fix)}
	}
	n, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || n < 1 {
		return 0, &detailedError{kind: ErrBadSize, msg: fmt.Sprintf(
			"discovery token %s has a bad size %q at key %s: want a positive whole number; create a new token with %s", token, value, key, fix)}
	}
	return n, nil
}

// v3SizeFix is how to create a v3 token.
const v3SizeFix = "`etcd-agent discovery new --size N`"

// snapshot is one consistent read of a v3 registry.
type snapshot struct {
	Size     int
	Regs     []Registration // well-formed registrations, sorted by create revision
	Rejected []error        // malformed registrations, skipped like etcd skips them
	Revision int64          // the store revision the read saw
}

// readRegistry reads the size key and all member keys of token in one
// transaction. Size errors are returned as is (wrap them with permanent).
func readRegistry(ctx context.Context, c *clientv3.Client, token string) (snapshot, error) {
	resp, err := c.Txn(ctx).Then(
		clientv3.OpGet(sizeKey(token)),
		clientv3.OpGet(membersPrefix(token), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return snapshot{}, fmt.Errorf("read registry of token %s: %w", token, err)
	}
	snap := snapshot{Revision: resp.Header.Revision}
	sizeKVs := resp.Responses[0].GetResponseRange().Kvs
	var sizeValue string
	if len(sizeKVs) > 0 {
		sizeValue = string(sizeKVs[0].Value)
	}
	snap.Size, err = parseSize(token, sizeKey(token), sizeValue, len(sizeKVs) > 0, v3SizeFix)
	if err != nil {
		return snapshot{}, err
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		id := strings.TrimPrefix(string(kv.Key), membersPrefix(token))
		r, err := parseRegistration(id, string(kv.Value), kv.CreateRevision)
		if err != nil {
			snap.Rejected = append(snap.Rejected, err)
			continue
		}
		snap.Regs = append(snap.Regs, r)
	}
	sortRegistrations(snap.Regs)
	return snap, nil
}
