package fleet

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/etcd-agent/etcd-agent/internal/asgtest"
)

const (
	testGroup     = "etcd-nodes"
	testInstance  = "i-0123456789abcdef0"
	testLaunch    = "etcd-launch"
	testTerminate = "etcd-terminate"
)

// testASG is the SDK's client, signed with the test credentials (or
// secret), pointed at endpoint.
func testASG(endpoint, secret, instance string) *ASG {
	client := autoscaling.New(autoscaling.Options{
		Region:       asgtest.Region,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(asgtest.AccessKeyID, secret, ""),
	})
	return &ASG{Client: client, Group: testGroup, InstanceID: instance}
}

// TestHooksOnTheWire: every call the agent makes reaches the API as the
// Query protocol request the API expects, signed with the credentials;
// every documented answer is sorted by its fix.
func TestHooksOnTheWire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := asgtest.Start(t, testGroup, []string{testInstance}, testLaunch, testTerminate)
	h := testASG(srv.URL, asgtest.SecretAccessKey, testInstance)

	if err := h.Heartbeat(ctx, testLaunch); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := h.Complete(ctx, testLaunch, ResultContinue); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if err := h.Complete(ctx, testTerminate, ResultAbandon); err != nil {
		t.Fatalf("complete abandon: %v", err)
	}
	want := []asgtest.Call{
		{Action: "RecordLifecycleActionHeartbeat", Group: testGroup, Hook: testLaunch, Instance: testInstance},
		{Action: "CompleteLifecycleAction", Group: testGroup, Hook: testLaunch, Instance: testInstance, Result: "CONTINUE"},
		{Action: "CompleteLifecycleAction", Group: testGroup, Hook: testTerminate, Instance: testInstance, Result: "ABANDON"},
	}
	got := srv.Calls()
	if len(got) != len(want) {
		t.Fatalf("calls %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if r := srv.Rejected(); len(r) > 0 {
		t.Fatalf("requests refused: %v", r)
	}

	for _, tc := range []struct {
		name string
		call func() error
		kind HookErrorKind
		fix  string
	}{
		{"completed already: no action pending", func() error { return h.Complete(ctx, testLaunch, ResultContinue) }, HookNoAction, "nothing to do"},
		{"unknown hook name", func() error { return h.Complete(ctx, "etcd-lunch", ResultContinue) }, HookInvalid, "describe-lifecycle-hooks"},
		{"unknown group", func() error {
			other := *h
			other.Group = "etcd-nodse"
			return other.Heartbeat(ctx, testLaunch)
		}, HookInvalid, `group ("etcd-nodse")`},
		{"wrong secret: the signature is refused", func() error {
			return testASG(srv.URL, "not-the-secret", testInstance).Heartbeat(ctx, testTerminate)
		}, HookDenied, "IAM policy"},
		{"access denied", func() error {
			srv.Deny(true)
			defer srv.Deny(false)
			return h.Heartbeat(ctx, testTerminate)
		}, HookDenied, "autoscaling:CompleteLifecycleAction"},
		{"API unreachable", func() error {
			return testASG(closedURL(t), asgtest.SecretAccessKey, testInstance).Heartbeat(ctx, testTerminate)
		}, HookUnreachable, "cannot reach the Auto Scaling API"},
	} {
		err := tc.call()
		var he *HookError
		if !errors.As(err, &he) {
			t.Errorf("%s: error %v, want a HookError", tc.name, err)
			continue
		}
		if he.Kind != tc.kind || !strings.Contains(he.Fix(), tc.fix) {
			t.Errorf("%s: kind %s, fix %q; want %s and a fix mentioning %q (err: %v)", tc.name, he.Kind, he.Fix(), tc.kind, tc.fix, err)
		}
	}
	if r := srv.Rejected(); len(r) != 1 || !strings.HasPrefix(r[0], "SignatureDoesNotMatch") {
		t.Errorf("refused requests %v, want just the badly signed one", r)
	}
}

// closedURL is an http URL on a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
