package identity

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// tokenPath is where IMDSv2 issues session tokens (PUT).
const tokenPath = "/latest/api/token"

// observer is the HTTP client handed to the SDK. It records the status of the
// responses seen during one attempt, because the SDK's errors do not reliably
// carry it: with IMDSv1 fallback disabled, a failed token request comes back
// wrapped in an error type that does not unwrap. A status of 0 means no
// response was received.
type observer struct {
	client *http.Client
	token  atomic.Int32 // last PUT /latest/api/token
	data   atomic.Int32 // last other request
}

// newObserver returns a client that dials IMDS directly: IMDS is link-local
// and must never go through HTTP_PROXY.
func newObserver(dialTimeout time.Duration) *observer {
	return &observer{client: &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
	}}}
}

// Do implements the SDK's HTTPClient.
func (o *observer) Do(req *http.Request) (*http.Response, error) {
	resp, err := o.client.Do(req)
	status := int32(0)
	if err == nil {
		status = int32(resp.StatusCode)
	}
	if req.Method == http.MethodPut && req.URL.Path == tokenPath {
		o.token.Store(status)
	} else {
		o.data.Store(status)
	}
	return resp, err
}

// reset forgets the statuses of the previous attempt.
func (o *observer) reset() {
	o.token.Store(0)
	o.data.Store(0)
}

// close releases idle connections once the fetcher is done.
func (o *observer) close() { o.client.CloseIdleConnections() }
