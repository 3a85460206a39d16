package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

var fullValues = simValues{
	LocalIPv4:  "10.0.1.5",
	PublicIPv4: "203.0.113.7",
	InstanceID: "i-0123456789abcdef0",
	AZ:         "eu-west-1b",
	Region:     "eu-west-1",
	Hostname:   "ip-10-0-1-5.eu-west-1.compute.internal",
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestIMDSHappyPath(t *testing.T) {
	t.Parallel()
	endpoint := startSimulator(t, fullValues)

	got, err := IMDS{Endpoint: endpoint, Logger: testLogger(t)}.Identity(t.Context())
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	want := Identity{
		Name:             "etcd-10-0-1-5",
		PrivateIP:        netip.MustParseAddr("10.0.1.5"),
		PublicIP:         netip.MustParseAddr("203.0.113.7"),
		InstanceID:       "i-0123456789abcdef0",
		AvailabilityZone: "eu-west-1b",
		Region:           "eu-west-1",
		Hostname:         "ip-10-0-1-5.eu-west-1.compute.internal",
		Source:           SourceIMDS,
	}
	if got != want {
		t.Errorf("Identity:\n got %+v\nwant %+v", got, want)
	}

	// The simulator runs with -I: a request without a session token is
	// refused, so the success above was made with IMDSv2 tokens.
	if status, _ := getStatus(t, endpoint+"/latest/meta-data/local-ipv4", ""); status != http.StatusUnauthorized {
		t.Errorf("GET local-ipv4 without token: HTTP %d, want 401 (simulator not in IMDSv2-only mode?)", status)
	}
}

func TestIMDSNoPublicIP(t *testing.T) {
	t.Parallel()
	v := fullValues
	// Unregistering public-ipv4 alone is not enough: the simulator's
	// catch-all handler lists sub-paths by substring, and
	// ".../macs/<mac>/public-ipv4s" contains "public-ipv4", so it would answer
	// 200 with a listing. Without both paths it answers 404, as EC2 does for
	// an instance without a public address.
	v.Omit = []string{"public-ipv4", "mac-public-ipv4s"}
	endpoint := startSimulator(t, v)

	// Check the premise: the simulator answers this path with 404.
	if status, body := getStatus(t, endpoint+"/latest/meta-data/public-ipv4", sessionToken(t, endpoint)); status != http.StatusNotFound {
		t.Fatalf("simulator public-ipv4: HTTP %d %q, want 404", status, body)
	}

	got, err := IMDS{Endpoint: endpoint, Logger: testLogger(t)}.Identity(t.Context())
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	if got.PublicIP.IsValid() {
		t.Errorf("PublicIP = %v, want none", got.PublicIP)
	}
	if got.PrivateIP != netip.MustParseAddr("10.0.1.5") || got.InstanceID != fullValues.InstanceID || got.Hostname != fullValues.Hostname {
		t.Errorf("other fields wrong: %+v", got)
	}
}

func TestIMDSRegionFromIdentityDocument(t *testing.T) {
	t.Parallel()
	v := fullValues
	v.Omit = []string{"placement-region"}
	v.DocRegion = "ap-southeast-2"
	endpoint := startSimulator(t, v)

	if status, body := getStatus(t, endpoint+"/latest/meta-data/placement/region", sessionToken(t, endpoint)); status != http.StatusNotFound {
		t.Fatalf("simulator placement/region: HTTP %d %q, want 404", status, body)
	}
	got, err := IMDS{Endpoint: endpoint, Logger: testLogger(t)}.Identity(t.Context())
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	if got.Region != "ap-southeast-2" {
		t.Errorf("Region = %q, want the identity document's ap-southeast-2", got.Region)
	}
}

func TestIMDSMissingRequiredItem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		omit []string
		want string
	}{
		{
			name: "404",
			omit: []string{"placement-availability-zone", "placement-availability-zone-id"},
			want: "HTTP 404",
		},
		{
			// Without placement-availability-zone-id, the simulator's
			// catch-all answers 200 with the listing "placement/" (its
			// substring match); a listing must never pass for a value.
			name: "listing instead of value",
			omit: []string{"placement-availability-zone"},
			want: `returned "placement/" for meta-data/placement/availability-zone, which is a listing`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := fullValues
			v.Omit = tt.omit
			endpoint := startSimulator(t, v)

			_, err := IMDS{Endpoint: endpoint, Logger: testLogger(t)}.Identity(t.Context())
			if err == nil {
				t.Fatal("Identity succeeded without an availability zone")
			}
			for _, want := range []string{"read availability zone", "placement/availability-zone", endpoint, tt.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestIMDSInvalidLocalIPv4(t *testing.T) {
	t.Parallel()
	v := fullValues
	v.LocalIPv4 = "not-an-ip"
	endpoint := startSimulator(t, v)

	_, err := IMDS{Endpoint: endpoint, Logger: testLogger(t)}.Identity(t.Context())
	if err == nil || !strings.Contains(err.Error(), `local-ipv4 "not-an-ip", which is not an IPv4 address`) {
		t.Fatalf("Identity error = %v, want it to reject local-ipv4", err)
	}
}

// TestIMDSRetriesTransientErrors puts a proxy in front of the simulator that
// answers the first requests with 503, as IMDS does when throttled or
// restarting; the client must retry through them.
func TestIMDSRetriesTransientErrors(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(startSimulator(t, fullValues))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var failures atomic.Int32
	failures.Store(2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failures.Add(-1) >= 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	got, err := IMDS{Endpoint: srv.URL, MaxAttempts: 3, Logger: testLogger(t)}.Identity(t.Context())
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	if got.PrivateIP != netip.MustParseAddr("10.0.1.5") || got.Region != "eu-west-1" {
		t.Errorf("Identity = %+v", got)
	}
	if n := failures.Load(); n >= 0 {
		t.Errorf("proxy still had %d failures to serve; the retry path was not exercised", n+1)
	}
}

// closedEndpoint returns the URL of a loopback port nothing listens on.
func closedEndpoint(t *testing.T) string {
	return "http://127.0.0.1:" + strconv.Itoa(testnet.FreePort(t, "127.0.0.1"))
}

func TestIMDSUnreachable(t *testing.T) {
	t.Parallel()
	endpoint := closedEndpoint(t)
	start := time.Now()
	_, err := IMDS{Endpoint: endpoint, AttemptTimeout: 300 * time.Millisecond, MaxAttempts: 3, Logger: testLogger(t)}.Identity(t.Context())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Identity succeeded against a closed port")
	}
	t.Logf("error after %v: %v", elapsed, err)
	for _, want := range []string{"IMDS at " + endpoint + " did not answer after 3 attempts", "IMDSv2", "HttpTokens=required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// Two backoffs of at most 200ms and 400ms; refused dials are instant.
	if elapsed > 3*time.Second {
		t.Errorf("took %v, want a bounded failure well under 3s", elapsed)
	}
}

// blackhole accepts TCP connections and never answers, like a firewalled or
// hop-limited IMDS.
func blackhole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

func TestIMDSSilentEndpointTimesOut(t *testing.T) {
	t.Parallel()
	endpoint := blackhole(t)
	start := time.Now()
	_, err := IMDS{Endpoint: endpoint, AttemptTimeout: 200 * time.Millisecond, MaxAttempts: 2, Logger: testLogger(t)}.Identity(t.Context())
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "IMDS at "+endpoint+" did not answer after 2 attempts") {
		t.Fatalf("Identity error = %v, want did-not-answer", err)
	}
	// 2 × 200ms attempts + one backoff of at most 200ms.
	if elapsed < 400*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("took %v, want the attempt timeouts to bound it (about 0.5-0.6s)", elapsed)
	}
}

func TestIMDSStopsOnContextCancel(t *testing.T) {
	t.Parallel()
	endpoint := blackhole(t)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := IMDS{Endpoint: endpoint, AttemptTimeout: 10 * time.Second, MaxAttempts: 5, Logger: testLogger(t)}.Identity(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Identity error = %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("took %v after a 300ms context deadline", elapsed)
	}
}

// v1OnlyServer serves metadata to IMDSv1 GETs and refuses to issue IMDSv2
// tokens with tokenStatus, like an old or token-disabled metadata service.
// It counts metadata GETs, which must stay at zero for our client.
func v1OnlyServer(t *testing.T, tokenStatus int) (string, *atomic.Int32) {
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == tokenPath {
			http.Error(w, "no tokens here", tokenStatus)
			return
		}
		gets.Add(1)
		switch r.URL.Path {
		case "/latest/meta-data/local-ipv4":
			_, _ = w.Write([]byte("10.9.9.9"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &gets
}

func TestIMDSNeverFallsBackToV1(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			endpoint, gets := v1OnlyServer(t, status)

			// Premise: this server is one the SDK falls back on when allowed.
			fallback := imds.New(imds.Options{Endpoint: endpoint})
			out, err := fallback.GetMetadata(t.Context(), &imds.GetMetadataInput{Path: "local-ipv4"})
			if err != nil {
				t.Fatalf("SDK with default fallback: %v", err)
			}
			out.Content.Close()
			if gets.Load() == 0 {
				t.Fatal("SDK with default fallback made no IMDSv1 GET; the premise does not hold")
			}
			gets.Store(0)

			_, err = IMDS{Endpoint: endpoint, MaxAttempts: 3, Logger: testLogger(t)}.Identity(t.Context())
			if err == nil {
				t.Fatal("Identity succeeded over IMDSv1")
			}
			t.Logf("error: %v", err)
			for _, want := range []string{"IMDSv2 session token", endpoint, fmt.Sprintf("HTTP %d", status)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if n := gets.Load(); n != 0 {
				t.Errorf("our client made %d IMDSv1 requests", n)
			}
		})
	}
}
