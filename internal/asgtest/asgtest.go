// Package asgtest is a stand-in for the EC2 Auto Scaling API's two
// lifecycle-hook actions, for tests: no Auto Scaling server can run on
// these machines, so the agent is tested up to the wire. The server checks
// each request exactly as the SDK sends it over the Query protocol (POST
// form with Action and Version, the group, hook, instance and result) and
// verifies its SigV4 signature against the test credentials, computed here
// independently of the SDK's signer; it answers with the XML the API
// reference documents, errors included (ValidationError, AccessDenied,
// SignatureDoesNotMatch).
package asgtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test credentials and where they sign.
const (
	AccessKeyID     = "AKIAIOSFODNN7EXAMPLE"
	SecretAccessKey = "wJalrXUtnFMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	Region          = "eu-west-1"
	service         = "autoscaling"
	apiVersion      = "2011-01-01"
	xmlns           = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
)

// Call is one request the server accepted as well-formed and signed.
type Call struct {
	Action, Group, Hook, Instance, Result string
	// Answer is the error code sent back ("" for success).
	Answer string
}

// Server is the stand-in API for one group.
type Server struct {
	URL string
	// Group is the only group it knows, Hooks its hooks, Instances the
	// instances with pending lifecycle actions (one per hook each).
	Group     string
	Hooks     []string
	Instances []string

	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	deny     bool
	done     map[string]bool // hook and instance → completed (no action pending since)
	calls    []Call
	at       []time.Time // when each call was answered
	rejected []string    // requests refused as malformed or unsigned, and why
}

// Start serves until the test ends.
func Start(t testing.TB, group string, instances []string, hooks ...string) *Server {
	s := &Server{Group: group, Hooks: hooks, Instances: instances, t: t, done: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Deny makes every later call fail with AccessDenied (a role without the
// permissions).
func (s *Server) Deny(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// Calls are the accepted requests so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Rejected are the requests refused as malformed or badly signed.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.rejected)
}

// Completed reports the result a hook was completed with for instance
// ("" if not).
func (s *Server) Completed(hook, instance string) string {
	for _, c := range s.Calls() {
		if c.Action == "CompleteLifecycleAction" && c.Hook == hook && c.Instance == instance && c.Answer == "" {
			return c.Result
		}
	}
	return ""
}

// CompletedAt is Completed with the time the call was answered (zero if
// not completed), for a scenario's timeline.
func (s *Server) CompletedAt(hook, instance string) (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.calls {
		if c.Action == "CompleteLifecycleAction" && c.Hook == hook && c.Instance == instance && c.Answer == "" {
			return c.Result, s.at[i]
		}
	}
	return "", time.Time{}
}

// Count is how many accepted calls of action for hook and instance
// succeeded.
func (s *Server) Count(action, hook, instance string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Action == action && c.Hook == hook && c.Instance == instance && c.Answer == "" {
			n++
		}
	}
	return n
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "MalformedQueryString", "read body: "+err.Error())
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		s.reject(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("the Query protocol is POST /, not %s %s", r.Method, r.URL.Path))
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.reject(w, http.StatusBadRequest, "MalformedQueryString", "Content-Type "+ct)
		return
	}
	if code, msg := verifySigV4(r, body); code != "" {
		s.reject(w, http.StatusForbidden, code, msg)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.reject(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	action := form.Get("Action")
	want := []string{"Action", "AutoScalingGroupName", "InstanceId", "LifecycleHookName", "Version"}
	switch action {
	case "CompleteLifecycleAction":
		want = append(want, "LifecycleActionResult")
	case "RecordLifecycleActionHeartbeat":
	default:
		s.reject(w, http.StatusBadRequest, "InvalidAction", "unexpected action "+action)
		return
	}
	sort.Strings(want)
	var got []string
	for k := range form {
		got = append(got, k)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) || form.Get("Version") != apiVersion {
		s.reject(w, http.StatusBadRequest, "MalformedQueryString", fmt.Sprintf("%s parameters %v (Version %q), want exactly %v (Version %s)", action, got, form.Get("Version"), want, apiVersion))
		return
	}
	c := Call{Action: action, Group: form.Get("AutoScalingGroupName"), Hook: form.Get("LifecycleHookName"),
		Instance: form.Get("InstanceId"), Result: form.Get("LifecycleActionResult")}
	status, code, msg := s.answer(c)
	c.Answer = code
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	if code != "" {
		writeError(w, status, code, msg)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID)
	fmt.Fprintf(w, "<%sResponse xmlns=%q>\n  <%sResult/>\n  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n</%sResponse>\n",
		action, xmlns, action, requestID, action)
}

// answer is the API's verdict on a well-formed, signed call.
func (s *Server) answer(c Call) (status int, code, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.deny:
		return http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: arn:aws:sts::123456789012:assumed-role/etcd-node/%s is not authorized to perform: autoscaling:%s on resource: arn:aws:autoscaling:%s:123456789012:autoScalingGroup:*:autoScalingGroupName/%s",
			c.Instance, c.Action, Region, c.Group)
	case c.Action == "CompleteLifecycleAction" && c.Result != "CONTINUE" && c.Result != "ABANDON":
		return http.StatusBadRequest, "ValidationError", "LifecycleActionResult must be CONTINUE or ABANDON"
	case c.Group != s.Group:
		return http.StatusBadRequest, "ValidationError", "Group " + c.Group + " not found"
	case !slices.Contains(s.Hooks, c.Hook):
		// What the API says for a hook the group does not have.
		return http.StatusBadRequest, "ValidationError", fmt.Sprintf("No Lifecycle Hook found with name %s for group %s", c.Hook, c.Group)
	case !slices.Contains(s.Instances, c.Instance) || s.done[c.Hook+" "+c.Instance]:
		return http.StatusBadRequest, "ValidationError", "No active Lifecycle Action found with instance ID " + c.Instance
	}
	if c.Action == "CompleteLifecycleAction" {
		s.done[c.Hook+" "+c.Instance] = true
	}
	return 0, "", ""
}

const requestID = "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE"

func (s *Server) reject(w http.ResponseWriter, status int, code, msg string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, code+": "+msg)
	s.mu.Unlock()
	s.t.Logf("asgtest: refused a request: %s: %s", code, msg)
	writeError(w, status, code, msg)
}

// writeError sends the Query protocol's documented error document.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-Requestid", requestID)
	w.WriteHeader(status)
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	fmt.Fprintf(w, "<ErrorResponse xmlns=%q>\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n",
		xmlns, typ, code, xmlEscape(msg), requestID)
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// verifySigV4 checks the Authorization header the way AWS does: the
// credential scope, the signed headers, and the signature recomputed from
// the canonical request with the test secret. It returns an error code
// and message, or "" when the signature is good.
func verifySigV4(r *http.Request, body []byte) (code, msg string) {
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, algo) {
		return "MissingAuthenticationToken", "no AWS4-HMAC-SHA256 Authorization header: " + auth
	}
	parts := map[string]string{}
	for p := range strings.SplitSeq(strings.TrimPrefix(auth, algo), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		parts[k] = v
	}
	cred := strings.Split(parts["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return "IncompleteSignature", "bad Credential " + parts["Credential"]
	}
	if cred[0] != AccessKeyID {
		return "InvalidClientTokenId", "The security token included in the request is invalid."
	}
	if cred[2] != Region || cred[3] != service {
		return "SignatureDoesNotMatch", fmt.Sprintf("credential scope %s/%s, want %s/%s", cred[2], cred[3], Region, service)
	}
	date := r.Header.Get("X-Amz-Date")
	if len(date) < 8 || date[:8] != cred[1] {
		return "IncompleteSignature", "X-Amz-Date " + date + " does not match the credential date " + cred[1]
	}
	signed := strings.Split(parts["SignedHeaders"], ";")
	if !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		return "IncompleteSignature", "SignedHeaders must include host and x-amz-date: " + parts["SignedHeaders"]
	}
	var canon strings.Builder
	for _, h := range signed {
		v := r.Header.Values(h)
		switch h {
		case "host":
			v = []string{r.Host}
		case "content-length":
			v = []string{fmt.Sprint(r.ContentLength)}
		}
		for i := range v {
			v[i] = strings.Join(strings.Fields(v[i]), " ")
		}
		canon.WriteString(h + ":" + strings.Join(v, ",") + "\n")
	}
	payload := sha256.Sum256(body)
	creq := strings.Join([]string{r.Method, "/", r.URL.RawQuery, canon.String(), parts["SignedHeaders"], hex.EncodeToString(payload[:])}, "\n")
	scope := strings.Join(cred[1:], "/")
	creqHash := sha256.Sum256([]byte(creq))
	toSign := "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hex.EncodeToString(creqHash[:])
	key := []byte("AWS4" + SecretAccessKey)
	for _, s := range cred[1:] {
		key = hmacSHA256(key, s)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(parts["Signature"])) {
		return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return "", ""
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
