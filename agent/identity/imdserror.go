package identity

import (
	"errors"
	"fmt"
	"net/http"
)

// errNotFound marks an HTTP 404 for a metadata item: the item does not exist
// on this instance (public-ipv4 without a public address, for example).
var errNotFound = errors.New("not found")

// outcome is what IMDS did during one failed attempt.
type outcome struct {
	tokenStatus int // status of the token request, 0 if none was answered or sent
	dataStatus  int // status of the metadata request, 0 if none was answered
}

// String names the failed HTTP answer: "HTTP 429 to the session token
// request", "HTTP 503".
func (o outcome) String() string {
	if o.tokenStatus != 0 && !ok2xx(o.tokenStatus) {
		return fmt.Sprintf("HTTP %d to the session token request", o.tokenStatus)
	}
	if o.dataStatus != 0 {
		return fmt.Sprintf("HTTP %d", o.dataStatus)
	}
	return "none"
}

// answered reports whether IMDS sent any HTTP response.
func (o outcome) answered() bool { return o.tokenStatus != 0 || o.dataStatus != 0 }

// permanent returns the error to give up with when the failed attempt cannot
// be cured by retrying, and nil when a retry may help: no answer, a timeout,
// HTTP 401 (token expired or rejected), 429 and 5xx.
func (f *fetcher) permanent(what string, o outcome, err error) error {
	if o.tokenStatus != 0 && !ok2xx(o.tokenStatus) {
		switch o.tokenStatus {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed:
			return fmt.Errorf("get IMDSv2 session token from IMDS at %s: HTTP %d: %w; IMDSv1 fallback is disabled on purpose: enable IMDSv2 on the instance (HttpEndpoint=enabled, HttpTokens=required)",
				f.endpoint, o.tokenStatus, err)
		}
		return nil
	}
	switch s := o.dataStatus; {
	case s == 0, ok2xx(s):
		return nil
	case s == http.StatusNotFound:
		return fmt.Errorf("read %s from IMDS at %s: %w (HTTP 404)", what, f.endpoint, errNotFound)
	case s == http.StatusUnauthorized, s == http.StatusTooManyRequests, s >= 500:
		return nil
	default:
		return fmt.Errorf("read %s from IMDS at %s: HTTP %d: %w", what, f.endpoint, s, err)
	}
}

func ok2xx(status int) bool { return status >= 200 && status < 300 }
