// Package route53test is a Route 53 API server for tests, which no real
// Route 53 can be here: it takes the REST-XML requests the AWS SDK sends
// for ChangeResourceRecordSets and ListResourceRecordSets, checks each
// one's SigV4 signature against the test credentials (computed anew, not
// with the SDK), keeps the record sets, and answers Route 53's documented
// XML, errors included (InvalidChangeBatch, NoSuchHostedZone,
// AccessDenied). DNS serves its record sets to real DNS clients.
package route53test

import (
	"encoding/xml"
	"fmt"
	"io"

	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/dnsrecords"
)

// xmlns is the namespace of Route 53's 2013-04-01 API.
const xmlns = "https://route53.amazonaws.com/doc/2013-04-01/"

// Test credentials the server accepts (static, as the tests pass them).
const (
	AccessKey = "AKIAROUTE53TEST00001"
	SecretKey = "route53-test-secret-key/0123456789abcdef"
)

// Request is one request the server answered, for the tests to check.
type Request struct {
	Op     string // ChangeResourceRecordSets, ListResourceRecordSets, or the path
	Zone   string
	Body   string
	Status int
	// Err is why it was refused ("" when it succeeded).
	Err string
}

// Server is a Route 53 API endpoint with hosted zones.
type Server struct {
	URL                  string
	AccessKey, SecretKey string
	Region               string
	// PageSize caps ListResourceRecordSets pages (Route 53's is 300), so
	// tests see the SDK caller page.
	PageSize int

	mu       sync.Mutex
	zones    map[string]*hostedZone
	denied   map[string]bool
	requests []Request
	changes  int
}

type hostedZone struct {
	apex string
	sets map[setKey]dnsrecords.RecordSet
}

type setKey struct{ name, typ string }

// New starts a server with the test credentials, signing region us-east-1,
// closed at the end of the test.
func New(t testing.TB) *Server {
	s := &Server{AccessKey: AccessKey, SecretKey: SecretKey, Region: "us-east-1", PageSize: 300,
		zones: map[string]*hostedZone{}, denied: map[string]bool{}}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// AddZone creates hosted zone id for apex (no trailing dot), with its SOA
// and NS record sets, as Route 53 creates them.
func (s *Server) AddZone(id, apex string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.ToLower(apex) + "."
	s.zones[id] = &hostedZone{apex: name, sets: map[setKey]dnsrecords.RecordSet{
		{name, "SOA"}: {Name: name, Type: "SOA", TTL: 900, Values: []string{"ns-1.awsdns-00.org. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"}},
		{name, "NS"}:  {Name: name, Type: "NS", TTL: 172800, Values: []string{"ns-1.awsdns-00.org."}},
	}}
}

// Deny makes the IAM policy refuse op (e.g. "ChangeResourceRecordSets"):
// requests for it get AccessDenied until Allow.
func (s *Server) Deny(op string) { s.mu.Lock(); s.denied[op] = true; s.mu.Unlock() }

// Allow takes back Deny.
func (s *Server) Allow(op string) { s.mu.Lock(); delete(s.denied, op); s.mu.Unlock() }

// Sets is zone id's record sets in Route 53's listing order.
func (s *Server) Sets(id string) []dnsrecords.RecordSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zones[id]
	if z == nil {
		return nil
	}
	return z.sorted()
}

// Put sets a record set directly (another tool's records, a stale one).
func (s *Server) Put(id string, r dnsrecords.RecordSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r = dnsrecords.Normalize(r)
	s.zones[id].sets[setKey{r.Name, r.Type}] = r
}

// Requests is every request answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (z *hostedZone) sorted() []dnsrecords.RecordSet {
	var out []dnsrecords.RecordSet
	for _, r := range z.sets {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b dnsrecords.RecordSet) int {
		if c := strings.Compare(reversed(a.Name), reversed(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.Type, b.Type)
	})
	return out
}

// reversed is a name with its labels right to left: Route 53's list order.
func reversed(name string) string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".")
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/2013-04-01/hostedzone/")
	zoneID, tail, _ := strings.Cut(rest, "/")
	op := r.Method + " " + r.URL.Path
	switch {
	case ok && tail == "rrset" && r.Method == http.MethodPost:
		op = "ChangeResourceRecordSets"
	case ok && tail == "rrset" && r.Method == http.MethodGet:
		op = "ListResourceRecordSets"
	}
	req := Request{Op: op, Zone: zoneID, Body: string(body)}
	status, resp := s.handle(r, body, &req)
	req.Status = status
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", fmt.Sprintf("test-%d", time.Now().UnixNano()))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header+resp)
}

// handle answers one request: the status and the XML body.
func (s *Server) handle(r *http.Request, body []byte, req *Request) (int, string) {
	if err := s.verifySigV4(r, body); err != nil {
		req.Err = err.Error()
		code, msg := "SignatureDoesNotMatch", err.Error()
		if c, m, ok := strings.Cut(msg, ": "); ok && (c == "SignatureDoesNotMatch" || c == "RequestTimeTooSkewed") {
			code, msg = c, m
		}
		return http.StatusForbidden, errorXML("Sender", code, msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Op != "ChangeResourceRecordSets" && req.Op != "ListResourceRecordSets" {
		req.Err = "not served"
		return http.StatusNotFound, errorXML("Sender", "UnknownOperationException", "this test server serves ChangeResourceRecordSets and ListResourceRecordSets only, not "+req.Op)
	}
	if s.denied[req.Op] {
		req.Err = "AccessDenied"
		return http.StatusForbidden, errorXML("Sender", "AccessDenied", fmt.Sprintf(
			"User: arn:aws:sts::123456789012:assumed-role/etcd-node/i-0123456789abcdef0 is not authorized to perform: route53:%s on resource: arn:aws:route53:::hostedzone/%s because no identity-based policy allows the route53:%s action",
			req.Op, req.Zone, req.Op))
	}
	z := s.zones[req.Zone]
	if z == nil {
		req.Err = "NoSuchHostedZone"
		return http.StatusNotFound, errorXML("Sender", "NoSuchHostedZone", "No hosted zone found with ID: "+req.Zone)
	}
	if req.Op == "ListResourceRecordSets" {
		return s.list(r, z, req)
	}
	return s.change(body, z, req)
}

func errorXML(typ, code, msg string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(msg))
	return fmt.Sprintf(`<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>test</RequestId></ErrorResponse>`,
		xmlns, typ, code, b.String())
}

// invalidChangeBatch is Route 53's own error shape for a refused batch.
func invalidChangeBatch(req *Request, msgs ...string) (int, string) {
	req.Err = "InvalidChangeBatch: " + strings.Join(msgs, "; ")
	var b strings.Builder
	fmt.Fprintf(&b, `<InvalidChangeBatch xmlns="%s"><Messages>`, xmlns)
	for _, m := range msgs {
		b.WriteString("<Message>")
		_ = xml.EscapeText(&b, []byte(m))
		b.WriteString("</Message>")
	}
	b.WriteString("</Messages><RequestId>test</RequestId></InvalidChangeBatch>")
	return http.StatusBadRequest, b.String()
}

type xmlRRSet struct {
	Name          string   `xml:"Name"`
	Type          string   `xml:"Type"`
	TTL           *int64   `xml:"TTL"`
	SetIdentifier string   `xml:"SetIdentifier,omitempty"`
	Values        []string `xml:"ResourceRecords>ResourceRecord>Value"`
}

type xmlChangeRequest struct {
	XMLName xml.Name `xml:"ChangeResourceRecordSetsRequest"`
	Comment string   `xml:"ChangeBatch>Comment"`
	Changes []struct {
		Action string   `xml:"Action"`
		Set    xmlRRSet `xml:"ResourceRecordSet"`
	} `xml:"ChangeBatch>Changes>Change"`
}

// change applies a batch atomically, or refuses all of it.
func (s *Server) change(body []byte, z *hostedZone, req *Request) (int, string) {
	var in xmlChangeRequest
	if err := xml.Unmarshal(body, &in); err != nil || in.XMLName.Space != xmlns {
		req.Err = fmt.Sprintf("MalformedXML: %v (namespace %q)", err, in.XMLName.Space)
		return http.StatusBadRequest, errorXML("Sender", "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema")
	}
	if len(in.Changes) == 0 {
		return invalidChangeBatch(req, "The request must contain at least one change")
	}
	next := map[setKey]dnsrecords.RecordSet{}
	for k, v := range z.sets {
		next[k] = v
	}
	seen := map[setKey]bool{}
	var msgs []string
	for _, c := range in.Changes {
		if c.Set.TTL == nil {
			msgs = append(msgs, "The request must contain a TTL for record "+c.Set.Name)
			continue
		}
		set := dnsrecords.Normalize(dnsrecords.RecordSet{Name: c.Set.Name, Type: c.Set.Type, TTL: *c.Set.TTL, Values: c.Set.Values})
		k := setKey{set.Name, set.Type}
		desc := fmt.Sprintf("[name='%s', type='%s']", set.Name, set.Type)
		if seen[k] {
			msgs = append(msgs, fmt.Sprintf("The request contains an invalid set of changes for a resource record set '%s %s'", set.Type, set.Name))
			continue
		}
		seen[k] = true
		if set.Name != z.apex && !strings.HasSuffix(set.Name, "."+z.apex) {
			msgs = append(msgs, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", set.Name, z.apex))
			continue
		}
		switch c.Action {
		case "DELETE":
			have, ok := next[k]
			switch {
			case !ok:
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but it was not found", desc))
			case have.TTL != set.TTL || !slices.Equal(have.Values, set.Values):
				msgs = append(msgs, fmt.Sprintf("Tried to delete resource record set %s but the values provided do not match the current values", desc))
			default:
				delete(next, k)
			}
		case "CREATE", "UPSERT":
			if _, ok := next[k]; ok && c.Action == "CREATE" {
				msgs = append(msgs, fmt.Sprintf("Tried to create resource record set %s but it already exists", desc))
				continue
			}
			if m := checkValues(set); m != "" {
				msgs = append(msgs, m)
				continue
			}
			if _, ok := next[setKey{set.Name, "CNAME"}]; ok && set.Type != "CNAME" {
				msgs = append(msgs, fmt.Sprintf("RRSet of type %s with DNS name %s is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone %s", set.Type, set.Name, z.apex))
				continue
			}
			next[k] = set
		default:
			msgs = append(msgs, fmt.Sprintf("Invalid action %q", c.Action))
		}
	}
	if len(msgs) > 0 {
		return invalidChangeBatch(req, msgs...)
	}
	z.sets = next
	s.changes++
	comment := new(strings.Builder)
	_ = xml.EscapeText(comment, []byte(in.Comment))
	return http.StatusOK, fmt.Sprintf(`<ChangeResourceRecordSetsResponse xmlns="%s"><ChangeInfo><Id>/change/C%08d</Id><Status>PENDING</Status><SubmittedAt>%s</SubmittedAt><Comment>%s</Comment></ChangeInfo></ChangeResourceRecordSetsResponse>`,
		xmlns, s.changes, time.Now().UTC().Format(time.RFC3339), comment)
}

// checkValues is Route 53's check of the values' syntax ("" when fine).
func checkValues(set dnsrecords.RecordSet) string {
	if len(set.Values) == 0 {
		return fmt.Sprintf("Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found none in Change with [Action=UPSERT, Name=%s, Type=%s]", set.Name, set.Type)
	}
	for _, v := range set.Values {
		switch set.Type {
		case "A":
			if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
				return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: ARRDATAIllegalIPv4Address (Value is not a valid IPv4 address) encountered with '%s''", v)
			}
		case "AAAA":
			if a, err := netip.ParseAddr(v); err != nil || !a.Is6() {
				return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: AAAARRDATAIllegalIPv6Address (Value is not a valid IPv6 address) encountered with '%s''", v)
			}
		case "SRV":
			f := strings.Fields(v)
			if len(f) != 4 {
				return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: SRVRRDATANotFourFields (Value should contain four fields) encountered with '%s''", v)
			}
			for _, n := range f[:3] {
				if x, err := strconv.ParseUint(n, 10, 16); err != nil || x > 65535 {
					return fmt.Sprintf("Invalid Resource Record: 'FATAL problem: SRVRRDATAIllegalNumber (Value contains an invalid number) encountered with '%s''", v)
				}
			}
		}
	}
	return ""
}

// xmlListedSet is a listed record set: each value in its own
// ResourceRecord element (encoding/xml would put a []string under one).
type xmlListedSet struct {
	Name    string     `xml:"Name"`
	Type    string     `xml:"Type"`
	TTL     int64      `xml:"TTL"`
	Records []xmlValue `xml:"ResourceRecords>ResourceRecord"`
}

type xmlValue struct {
	Value string `xml:"Value"`
}

type xmlListResponse struct {
	XMLName   xml.Name       `xml:"ListResourceRecordSetsResponse"`
	Xmlns     string         `xml:"xmlns,attr"`
	Sets      []xmlListedSet `xml:"ResourceRecordSets>ResourceRecordSet"`
	Truncated bool           `xml:"IsTruncated"`
	MaxItems  int            `xml:"MaxItems"`
	NextName  string         `xml:"NextRecordName,omitempty"`
	NextType  string         `xml:"NextRecordType,omitempty"`
}

// list is one page of the zone from the query's name and type on.
func (s *Server) list(r *http.Request, z *hostedZone, req *Request) (int, string) {
	q := r.URL.Query()
	max := s.PageSize
	if m := q.Get("maxitems"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 {
			req.Err = "InvalidInput: maxitems"
			return http.StatusBadRequest, errorXML("Sender", "InvalidInput", "1 validation error detected: Value '"+m+"' at 'maxItems' failed to satisfy constraint")
		}
		max = min(max, n)
	}
	if q.Get("type") != "" && q.Get("name") == "" {
		req.Err = "InvalidInput: type without name"
		return http.StatusBadRequest, errorXML("Sender", "InvalidInput", "The input is not valid: StartRecordType requires StartRecordName")
	}
	startName := strings.ToLower(q.Get("name"))
	if startName != "" && !strings.HasSuffix(startName, ".") {
		startName += "."
	}
	out := xmlListResponse{Xmlns: xmlns, MaxItems: max}
	for _, set := range z.sorted() {
		if startName != "" {
			c := strings.Compare(reversed(set.Name), reversed(startName))
			if c < 0 || c == 0 && set.Type < q.Get("type") {
				continue
			}
		}
		if len(out.Sets) == max {
			out.Truncated, out.NextName, out.NextType = true, set.Name, set.Type
			break
		}
		ls := xmlListedSet{Name: set.Name, Type: set.Type, TTL: set.TTL}
		for _, v := range set.Values {
			ls.Records = append(ls.Records, xmlValue{v})
		}
		out.Sets = append(out.Sets, ls)
	}
	b, err := xml.Marshal(out)
	if err != nil {
		return http.StatusInternalServerError, errorXML("Receiver", "InternalFailure", err.Error())
	}
	return http.StatusOK, string(b)
}
