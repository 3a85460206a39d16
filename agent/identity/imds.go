package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Defaults for the zero values of IMDS fields.
const (
	DefaultIMDSEndpoint       = "http://169.254.169.254"
	DefaultIMDSAttemptTimeout = 2 * time.Second
	DefaultIMDSMaxAttempts    = 5
)

// endpointEnv is the SDK's own endpoint override, honoured when
// IMDS.Endpoint is empty so that the endpoint we report is the one we used.
const endpointEnv = "AWS_EC2_METADATA_SERVICE_ENDPOINT"

// IMDS reads the identity from the EC2 instance metadata service, IMDSv2 only:
// every request carries a session token, and when no token can be obtained the
// call fails instead of falling back to IMDSv1.
//
// Each metadata item is fetched with up to MaxAttempts attempts of at most
// AttemptTimeout each, separated by a jittered backoff capped at 2s, so one
// Identity call takes at most about 7 × MaxAttempts × (AttemptTimeout + 2s),
// and stops as soon as ctx ends. When IMDS does not answer at all, the first
// item fails after MaxAttempts and Identity returns.
type IMDS struct {
	// Endpoint is the IMDS base URL. "" means $AWS_EC2_METADATA_SERVICE_ENDPOINT
	// when set, else DefaultIMDSEndpoint (http://169.254.169.254).
	Endpoint string
	// AttemptTimeout bounds each HTTP call, token included; 0 means
	// DefaultIMDSAttemptTimeout (2s).
	AttemptTimeout time.Duration
	// MaxAttempts is the number of attempts per metadata item; 0 means
	// DefaultIMDSMaxAttempts (5).
	MaxAttempts int
	// Logger receives retries and fallbacks; nil discards them.
	Logger *slog.Logger
}

var _ Source = IMDS{}

// Identity fetches local-ipv4, public-ipv4 (absent is not an error),
// instance-id, placement/availability-zone, placement/region (falling back to
// the instance identity document) and local-hostname.
func (s IMDS) Identity(ctx context.Context) (Identity, error) {
	f := s.fetcher()
	defer f.http.close()

	local, err := f.get(ctx, "local-ipv4")
	if err != nil {
		return Identity{}, fmt.Errorf("read private IP: %w", err)
	}
	privateIP, err := netip.ParseAddr(local)
	if err != nil || !privateIP.Is4() {
		return Identity{}, fmt.Errorf("read private IP: IMDS at %s returned local-ipv4 %q, which is not an IPv4 address", f.endpoint, local)
	}

	id := Identity{
		Name:      MemberName(privateIP),
		PrivateIP: privateIP,
		Source:    SourceIMDS,
	}

	public, err := f.get(ctx, "public-ipv4")
	switch {
	case errors.Is(err, errNotFound):
		f.log.Debug("instance has no public IPv4 address", "endpoint", f.endpoint)
	case err != nil:
		return Identity{}, fmt.Errorf("read public IP: %w", err)
	default:
		if id.PublicIP, err = netip.ParseAddr(public); err != nil {
			return Identity{}, fmt.Errorf("read public IP: IMDS at %s returned public-ipv4 %q, which is not an IP address", f.endpoint, public)
		}
	}

	if id.InstanceID, err = f.get(ctx, "instance-id"); err != nil {
		return Identity{}, fmt.Errorf("read instance id: %w", err)
	}
	if id.AvailabilityZone, err = f.get(ctx, "placement/availability-zone"); err != nil {
		return Identity{}, fmt.Errorf("read availability zone: %w", err)
	}
	if id.Region, err = f.region(ctx); err != nil {
		return Identity{}, fmt.Errorf("read region: %w", err)
	}
	if id.Hostname, err = f.get(ctx, "local-hostname"); err != nil {
		return Identity{}, fmt.Errorf("read hostname: %w", err)
	}
	return id, nil
}

// fetcher resolves the defaults and builds an IMDSv2-only client.
func (s IMDS) fetcher() *fetcher {
	f := &fetcher{
		endpoint:       s.Endpoint,
		attemptTimeout: s.AttemptTimeout,
		maxAttempts:    s.MaxAttempts,
		log:            s.Logger,
	}
	if f.endpoint == "" {
		f.endpoint = os.Getenv(endpointEnv)
	}
	if f.endpoint == "" {
		f.endpoint = DefaultIMDSEndpoint
	}
	if f.attemptTimeout <= 0 {
		f.attemptTimeout = DefaultIMDSAttemptTimeout
	}
	if f.maxAttempts <= 0 {
		f.maxAttempts = DefaultIMDSMaxAttempts
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.http = newObserver(f.attemptTimeout)
	f.client = imds.New(imds.Options{
		Endpoint:   f.endpoint,
		HTTPClient: f.http,
		// Without this the SDK silently downgrades to IMDSv1 when the token
		// request fails.
		EnableFallback: aws.FalseTernary,
		// The agent's configuration chooses IMDS; AWS_EC2_METADATA_DISABLED
		// must not turn it into a confusing "access disabled" error.
		ClientEnableState: imds.ClientEnabled,
		// We retry ourselves (fetch.go) so that the total time is bounded and
		// every retry is logged; AttemptTimeout replaces the SDK's fixed 5s.
		Retryer:               aws.NopRetryer{},
		DisableDefaultTimeout: true,
	})
	return f
}
