package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Reader reads metadata items again and again with one IMDSv2 client (the
// SDK keeps and renews its session token), for watchers that poll IMDS for
// the node's whole life (package fleet). Each Get is bounded the way
// Identity's reads are: MaxAttempts attempts of AttemptTimeout each.
type Reader struct {
	f *fetcher
}

// NewReader returns a Reader over the IMDS s describes. Close it when done.
func (s IMDS) NewReader() *Reader { return &Reader{f: s.fetcher()} }

// Endpoint is the IMDS base URL the reader uses.
func (r *Reader) Endpoint() string { return r.f.endpoint }

// Get reads meta-data/<path> as it is (a JSON document, a word), trimmed of
// surrounding white space. found is false, with a nil error, when IMDS
// answers 404: most notices (spot/instance-action, the rebalance
// recommendation) exist only once EC2 has something to say.
func (r *Reader) Get(ctx context.Context, path string) (value string, found bool, err error) {
	err = r.f.retry(ctx, "meta-data/"+path, func(ctx context.Context) error {
		out, err := r.f.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
		if err != nil {
			return err
		}
		defer out.Content.Close()
		b, err := io.ReadAll(io.LimitReader(out.Content, maxValueBytes))
		if err != nil {
			return fmt.Errorf("read response body: %w", err)
		}
		value = strings.TrimSpace(string(b))
		return nil
	})
	if errors.Is(err, errNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return value, true, nil
}

// Close releases the reader's idle connections.
func (r *Reader) Close() { r.f.http.close() }
