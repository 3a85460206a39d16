package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// simulatorEnv overrides where the IMDS simulator binary is found.
const simulatorEnv = "ETCD_AGENT_TEST_IMDS_MOCK"

// simulatorBinary locates amazon-ec2-metadata-mock, built by `make tools`.
func simulatorBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv(simulatorEnv)
	if path == "" {
		path = filepath.Join("..", "..", "bin", "ec2-metadata-mock")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("resolve simulator path %s: %v", path, err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("IMDS simulator not found at %s (%v): run `make tools` from the module root, or set %s", abs, err, simulatorEnv)
	}
	return abs
}

// simValues are the metadata values a test gives the simulator.
type simValues struct {
	LocalIPv4, PublicIPv4, InstanceID, AZ, Region, Hostname string
	// DocRegion is the identity document's region; "" means Region.
	DocRegion string
	// Omit lists simulator path keys to unregister, so they answer 404.
	Omit []string
}

// config renders the simulator's JSON config. The identity document is
// overridden as well: its default privateIp disagrees with local-ipv4.
func (v simValues) config() map[string]any {
	docRegion := v.DocRegion
	if docRegion == "" {
		docRegion = v.Region
	}
	paths := map[string]any{}
	for _, key := range v.Omit {
		paths[key] = "" // an empty path is not registered by the simulator
	}
	return map[string]any{
		"metadata": map[string]any{
			"paths": paths,
			"values": map[string]any{
				"local-ipv4":                  v.LocalIPv4,
				"mac-local-ipv4s":             v.LocalIPv4,
				"public-ipv4":                 v.PublicIPv4,
				"mac-public-ipv4s":            v.PublicIPv4,
				"instance-id":                 v.InstanceID,
				"placement-availability-zone": v.AZ,
				"placement-region":            v.Region,
				"local-hostname":              v.Hostname,
				"hostname":                    v.Hostname,
			},
		},
		"dynamic": map[string]any{
			"values": map[string]any{
				"instance-identity-document": map[string]any{
					"privateIp":        v.LocalIPv4,
					"instanceId":       v.InstanceID,
					"availabilityZone": v.AZ,
					"region":           docRegion,
				},
			},
		},
	}
}

// startSimulator runs the simulator in IMDSv2-only mode (-I) on a free
// loopback port until the test ends and returns its endpoint URL.
func startSimulator(t *testing.T, v simValues) string {
	t.Helper()
	bin := simulatorBinary(t)
	dir := t.TempDir()
	cfg, err := json.Marshal(v.config())
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	// The port is picked by the kernel and released just before the
	// simulator binds it; a lost race shows as an early exit and is retried.
	var lastErr error
	for range 3 {
		port := strconv.Itoa(testnet.FreePort(t, "127.0.0.1"))
		endpoint, err := runSimulator(t, bin, dir, cfgPath, port)
		if err == nil {
			return endpoint
		}
		lastErr = err
	}
	t.Fatalf("start IMDS simulator: %v", lastErr)
	return ""
}

func runSimulator(t *testing.T, bin, dir, cfgPath, port string) (string, error) {
	out := &syncBuffer{}
	cmd := exec.Command(bin, "-n", "127.0.0.1", "-p", port, "-I", "-c", cfgPath)
	cmd.Dir = dir
	// A clean environment: AEMM_* variables and $HOME/aemm-config.json would
	// otherwise change the simulator's values.
	cmd.Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	addr := net.JoinHostPort("127.0.0.1", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return "", fmt.Errorf("simulator exited early (%v):\n%s", err, out.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("simulator did not listen on %s within 10s:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("IMDS simulator output:\n%s", out.String())
		}
	})
	return "http://" + addr, nil
}

// getStatus performs a GET with an optional IMDSv2 token and returns the
// status code and body.
func getStatus(t *testing.T, url, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-aws-ec2-metadata-token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String())
}

// sessionToken asks an IMDSv2 endpoint for a token the plain-HTTP way.
func sessionToken(t *testing.T, endpoint string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint+tokenPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT %s: %v", tokenPath, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: HTTP %d", tokenPath, resp.StatusCode)
	}
	return strings.TrimSpace(b.String())
}

// syncBuffer collects the simulator's output from its writer goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
