// Package s3test runs a real S3-compatible server process for tests: the
// versitygw gateway with its posix backend (built by `make tools` into
// bin/), on a loopback address, with a fresh root directory and keys.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/etcd-agent/etcd-agent/internal/testnet"
)

// Server is a running gateway.
type Server struct {
	// Endpoint is its URL (http://ip:port).
	Endpoint string
	// Root is the posix backend's directory: bucket B is Root/B.
	Root string
	// AccessKey and SecretKey are the root user's credentials.
	AccessKey, SecretKey string

	bin  string
	args []string
	cmd  *exec.Cmd
	logs *syncBuffer
}

// Binary finds versitygw: $ETCD_AGENT_VERSITYGW, else bin/versitygw of the
// module, else $PATH.
func Binary() (string, error) {
	if p := os.Getenv("ETCD_AGENT_VERSITYGW"); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	if p := filepath.Join(root, "bin", "versitygw"); isExec(p) {
		return p, nil
	}
	return exec.LookPath("versitygw")
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start runs a gateway on ip (a free port) until the test ends. It skips the
// test, saying how to get one, when versitygw is not built.
func Start(t testing.TB, ip string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Skipf("versitygw not found (run `make tools`, which installs it into bin/): %v", err)
	}
	root := t.TempDir()
	port := testnet.FreePort(t, ip)
	s := &Server{
		Endpoint: fmt.Sprintf("http://%s:%d", ip, port), Root: root,
		AccessKey: "etcdagenttest", SecretKey: "etcd-agent-test-secret-key",
		logs: &syncBuffer{},
	}
	// --sidecar keeps object metadata in files: no xattrs needed on the
	// test machine's file system.
	sidecar := t.TempDir()
	s.bin, s.args = bin, []string{"--access", s.AccessKey, "--secret", s.SecretKey,
		"--port", fmt.Sprintf("%s:%d", ip, port), "--quiet", "posix", "--sidecar", sidecar, root}
	t.Cleanup(s.Stop)
	s.run(t)
	return s
}

// Restart starts a stopped gateway again on the same address, root and
// metadata: what it stored is there again (an S3 outage that ends).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.run(t)
}

// run starts the gateway and waits until it answers.
func (s *Server) run(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	// The gateway dies with the test process, even one that crashed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw on %s not answering after 30s: %v\n%s", s.Endpoint, err, s.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop ends the gateway (idempotent).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// Logs returns what the gateway printed.
func (s *Server) Logs() string { return s.logs.String() }

// Env sets the SDK's default-chain environment to this server's root
// credentials for the rest of the test (what the instance role is on EC2),
// and keeps the SDK away from the real IMDS and shared config files.
func (s *Server) Env(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	NoAWSEnv(t)
}

// NoAWSEnv isolates the SDK's default chain from the machine: no shared
// config files, no IMDS (a closed loopback port instead of 169.254.169.254).
func NoAWSEnv(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.8.1:1")
	t.Setenv("AWS_REGION", "us-east-1")
}

// Client is an S3 client with the root credentials.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Bucket creates a bucket.
func (s *Server) Bucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v\n%s", name, err, s.Logs())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
