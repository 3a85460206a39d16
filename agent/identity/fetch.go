package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Backoff between attempts: doubling from backoffBase, capped at backoffMax,
// each delay drawn uniformly from [d/2, d).
const (
	backoffBase = 200 * time.Millisecond
	backoffMax  = 2 * time.Second
)

// maxValueBytes bounds what we read from one metadata item.
const maxValueBytes = 64 << 10

// fetcher performs bounded, retried IMDSv2 reads for one Identity call. The
// SDK client caches its session token, so one fetcher fetches one token.
type fetcher struct {
	client         *imds.Client
	http           *observer
	endpoint       string
	attemptTimeout time.Duration
	maxAttempts    int
	log            *slog.Logger
}

// get reads meta-data/<path>. A 404 yields an error matching errNotFound.
func (f *fetcher) get(ctx context.Context, path string) (string, error) {
	var value string
	err := f.retry(ctx, "meta-data/"+path, func(ctx context.Context) error {
		out, err := f.client.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
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
	if err != nil {
		return "", err
	}
	if value == "" {
		return "", fmt.Errorf("IMDS at %s returned an empty meta-data/%s", f.endpoint, path)
	}
	// Every item we read is one token. Whitespace or a slash means a
	// directory listing came back instead of a value.
	if strings.ContainsFunc(value, func(r rune) bool { return r == '/' || unicode.IsSpace(r) }) {
		return "", fmt.Errorf("IMDS at %s returned %q for meta-data/%s, which is a listing, not a single value", f.endpoint, value, path)
	}
	return value, nil
}

// region reads placement/region, which older instance metadata lacks, and
// falls back to the region in the instance identity document.
func (f *fetcher) region(ctx context.Context) (string, error) {
	region, err := f.get(ctx, "placement/region")
	if !errors.Is(err, errNotFound) {
		return region, err
	}
	f.log.Info("IMDS has no placement/region, using the instance identity document", "endpoint", f.endpoint)
	err = f.retry(ctx, "dynamic/instance-identity/document", func(ctx context.Context) error {
		out, err := f.client.GetRegion(ctx, &imds.GetRegionInput{})
		if err != nil {
			return err
		}
		region = out.Region
		return nil
	})
	return region, err
}

// retry runs call until it succeeds, fails permanently, runs out of attempts
// or ctx ends. Each attempt gets its own deadline of attemptTimeout.
func (f *fetcher) retry(ctx context.Context, what string, call func(context.Context) error) error {
	var last error
	answered := false // IMDS sent an HTTP response at least once
	var lastAnswer outcome
	for attempt := 1; ; attempt++ {
		f.http.reset()
		actx, cancel := context.WithTimeout(ctx, f.attemptTimeout)
		err := call(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read %s from IMDS at %s: %w (last error: %v)", what, f.endpoint, ctx.Err(), err)
		}
		o := outcome{tokenStatus: int(f.http.token.Load()), dataStatus: int(f.http.data.Load())}
		if perm := f.permanent(what, o, err); perm != nil {
			return perm
		}
		last = err
		if o.answered() {
			answered, lastAnswer = true, o
		}
		if attempt >= f.maxAttempts {
			break
		}
		delay := backoff(attempt)
		f.log.Warn("IMDS request failed, retrying",
			"item", what, "endpoint", f.endpoint,
			"attempt", attempt, "max_attempts", f.maxAttempts,
			"retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("read %s from IMDS at %s: %w (last error: %v)", what, f.endpoint, ctx.Err(), last)
		case <-t.C:
		}
	}
	if !answered {
		return fmt.Errorf("IMDS at %s did not answer after %d attempts: %w; is this an EC2 instance with IMDSv2 enabled (HttpTokens=required, hop limit >= 1)?",
			f.endpoint, f.maxAttempts, last)
	}
	// The last HTTP status first: it is what STATUS= shows of a long error.
	return fmt.Errorf("read %s from IMDS at %s: gave up after %d attempts, last answer %s: %w", what, f.endpoint, f.maxAttempts, lastAnswer, last)
}

// backoff returns the jittered delay after the given failed attempt (1-based).
func backoff(attempt int) time.Duration {
	d := backoffMax
	if attempt <= 10 {
		d = min(backoffBase<<(attempt-1), backoffMax)
	}
	return d/2 + rand.N(d/2)
}
