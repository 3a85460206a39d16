package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// The subset of etcd's v2 keys API that v2 discovery uses.

// v2 error codes (etcd/server/etcdserver/api/v2error).
const (
	v2KeyNotFound   = 100
	v2NodeExist     = 105
	v2EventIndexOld = 401
)

type v2Node struct {
	Key           string   `json:"key"`
	Value         string   `json:"value"`
	Dir           bool     `json:"dir"`
	Nodes         []v2Node `json:"nodes"`
	CreatedIndex  int64    `json:"createdIndex"`
	ModifiedIndex int64    `json:"modifiedIndex"`
}

type v2Response struct {
	Action string  `json:"action"`
	Node   *v2Node `json:"node"`
	// Set on errors.
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
	Cause     string `json:"cause"`

	status    int   // HTTP status
	etcdIndex int64 // X-Etcd-Index: the store index when the response was made
}

// v2Error is an error response of the keys API.
type v2Error struct {
	Status  int
	Code    int
	Message string
	Cause   string
}

func (e *v2Error) Error() string {
	return fmt.Sprintf("v2 keys API: %d %s (errorCode %d, %s)", e.Status, e.Message, e.Code, e.Cause)
}

// v2Client speaks to one v2 discovery URL.
type v2Client struct {
	base *url.URL // the discovery URL, no trailing slash
	http *http.Client
}

func newV2Client(raw string, hc *http.Client) (*v2Client, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("parse v2 discovery URL %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("parse v2 discovery URL %q: want http(s)://host/<token> or http(s)://host/v2/keys/_etcd/registry/<token>", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if tok := path.Base(u.Path); tok == "" || tok == "." || tok == "/" {
		return nil, fmt.Errorf("parse v2 discovery URL %q: no token in its path", raw)
	}
	u.RawQuery, u.Fragment = "", ""
	if hc == nil {
		hc = &http.Client{}
	}
	return &v2Client{base: u, http: hc}, nil
}

// token is the last path element of the URL.
func (c *v2Client) token() string { return path.Base(c.base.Path) }

func (c *v2Client) url(sub string, q url.Values) string {
	u := *c.base
	if sub != "" {
		u.Path += "/" + sub
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends a request and decodes the keys API answer. Transport errors and
// 5xx answers are returned as plain errors (worth retrying); keys API errors
// as *v2Error.
func (c *v2Client) do(ctx context.Context, method, sub string, q url.Values, form url.Values) (v2Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(sub, q), body)
	if err != nil {
		return v2Response{}, fmt.Errorf("build request: %w", err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return v2Response{}, fmt.Errorf("%s %s: %w", method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return v2Response{}, fmt.Errorf("%s %s: read answer: %w", method, req.URL.Redacted(), err)
	}
	if resp.StatusCode >= 500 {
		return v2Response{}, fmt.Errorf("%s %s: %s: %.200s", method, req.URL.Redacted(), resp.Status, data)
	}
	var out v2Response
	if err := json.Unmarshal(data, &out); err != nil {
		return v2Response{}, permanent(fmt.Errorf("%s %s: %s, not a v2 keys API answer (%.200q): %w", method, req.URL.Redacted(), resp.Status, data, err))
	}
	out.status = resp.StatusCode
	out.etcdIndex, _ = strconv.ParseInt(resp.Header.Get("X-Etcd-Index"), 10, 64)
	if out.ErrorCode != 0 || resp.StatusCode >= 400 {
		return out, &v2Error{Status: resp.StatusCode, Code: out.ErrorCode, Message: out.Message, Cause: out.Cause}
	}
	return out, nil
}

func isV2Code(err error, code int) bool {
	var e *v2Error
	return errors.As(err, &e) && e.Code == code
}

// read gets the size and the member list.
func (c *v2Client) read(ctx context.Context) (snapshot, error) {
	resp, err := c.do(ctx, http.MethodGet, "_config/size", nil, nil)
	found := err == nil && resp.Node != nil
	if err != nil && !isV2Code(err, v2KeyNotFound) {
		return snapshot{}, fmt.Errorf("read size: %w", err)
	}
	var value string
	if found {
		value = resp.Node.Value
	}
	sizeURL := c.url("_config/size", nil)
	size, err := parseSize(c.token(), sizeURL, value, found, "`curl -X PUT "+sizeURL+" -d value=N`")
	if err != nil {
		return snapshot{}, err
	}

	resp, err = c.do(ctx, http.MethodGet, "", url.Values{"recursive": {"true"}, "sorted": {"true"}}, nil)
	if err != nil {
		return snapshot{}, fmt.Errorf("read members: %w", err)
	}
	// X-Etcd-Index is the store index of the listing: watch from the next one.
	snap := snapshot{Size: size, Revision: resp.etcdIndex}
	if resp.Node != nil {
		for _, n := range resp.Node.Nodes {
			id := path.Base(n.Key)
			if n.Dir || id == "_config" {
				continue
			}
			r, err := parseRegistration(id, n.Value, n.CreatedIndex)
			if err != nil {
				snap.Rejected = append(snap.Rejected, err)
				continue
			}
			snap.Regs = append(snap.Regs, r)
		}
	}
	sortRegistrations(snap.Regs)
	return snap, nil
}

// create writes key id with value unless it exists; it returns the existing
// value when it does.
func (c *v2Client) create(ctx context.Context, id, value string) (existing string, created bool, err error) {
	_, err = c.do(ctx, http.MethodPut, id, url.Values{"prevExist": {"false"}}, url.Values{"value": {value}})
	if err == nil {
		return "", true, nil
	}
	if !isV2Code(err, v2NodeExist) {
		return "", false, fmt.Errorf("create %s: %w", id, err)
	}
	resp, err := c.do(ctx, http.MethodGet, id, nil, nil)
	if err != nil {
		return "", false, fmt.Errorf("read existing %s: %w", id, err)
	}
	if resp.Node == nil {
		return "", false, fmt.Errorf("read existing %s: answer has no node", id)
	}
	return resp.Node.Value, false, nil
}

// wait blocks until something under the registry changes at or after index,
// or ctx ends. An index too old to watch returns nil: re-read.
func (c *v2Client) wait(ctx context.Context, index int64) error {
	_, err := c.do(ctx, http.MethodGet, "", url.Values{
		"wait": {"true"}, "recursive": {"true"}, "waitIndex": {strconv.FormatInt(index, 10)},
	}, nil)
	if isV2Code(err, v2EventIndexOld) {
		return nil
	}
	return err
}
