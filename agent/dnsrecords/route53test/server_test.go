package route53test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const change = `<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes><Change><Action>UPSERT</Action><ResourceRecordSet><Name>a.example.com.</Name><Type>A</Type><TTL>60</TTL><ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>`

// TestSignatureChecked: the server's own SigV4 check accepts what the
// SDK's signer signs, and refuses the same request once anything signed
// changes after signing (body, path, query, a signed header) or the
// signature is made with another secret, region or service.
func TestSignatureChecked(t *testing.T) {
	s := New(t)
	s.AddZone("Z1", "example.com")
	signed := func(method, path, body string, secret, region, service string) *http.Request {
		req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		creds := aws.Credentials{AccessKeyID: AccessKey, SecretAccessKey: secret}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
			t.Fatal(err)
		}
		return req
	}
	send := func(req *http.Request) (int, string) {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const rrset = "/2013-04-01/hostedzone/Z1/rrset"
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		want   string
	}{
		{"signed change", func() *http.Request { return signed("POST", rrset, change, SecretKey, "us-east-1", "route53") }, 200, "<Status>PENDING</Status>"},
		{"signed list", func() *http.Request {
			return signed("GET", rrset+"?name=a.example.com.&type=A&maxitems=1", "", SecretKey, "us-east-1", "route53")
		}, 200, "<Name>a.example.com.</Name><Type>A</Type>"},
		{"body changed after signing", func() *http.Request {
			r := signed("POST", rrset, change, SecretKey, "us-east-1", "route53")
			tampered := strings.Replace(change, "192.0.2.1", "192.0.2.6", 1)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader([]byte(tampered))), int64(len(tampered))
			return r
		}, 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"zone changed after signing", func() *http.Request {
			r := signed("POST", rrset, change, SecretKey, "us-east-1", "route53")
			r.URL.Path = "/2013-04-01/hostedzone/Z2/rrset"
			return r
		}, 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"query changed after signing", func() *http.Request {
			r := signed("GET", rrset+"?name=a.example.com.", "", SecretKey, "us-east-1", "route53")
			r.URL.RawQuery = "name=b.example.com."
			return r
		}, 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"signed header changed", func() *http.Request {
			r := signed("POST", rrset, change, SecretKey, "us-east-1", "route53")
			r.Header.Set("X-Amz-Date", time.Now().Add(time.Second).UTC().Format("20060102T150405Z"))
			return r
		}, 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"other secret", func() *http.Request { return signed("POST", rrset, change, "wrong", "us-east-1", "route53") }, 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"other region", func() *http.Request { return signed("POST", rrset, change, SecretKey, "eu-west-1", "route53") }, 403, "signed for region"},
		{"other service", func() *http.Request { return signed("POST", rrset, change, SecretKey, "us-east-1", "s3") }, 403, "signed for service"},
		{"unsigned", func() *http.Request {
			r, _ := http.NewRequest("POST", s.URL+rrset, strings.NewReader(change))
			return r
		}, 403, "is not AWS4-HMAC-SHA256"},
		{"stale date", func() *http.Request {
			r, _ := http.NewRequest("GET", s.URL+rrset, nil)
			creds := aws.Credentials{AccessKeyID: AccessKey, SecretAccessKey: SecretKey}
			sum := sha256.Sum256(nil)
			_ = v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "route53", "us-east-1", time.Now().Add(-time.Hour))
			return r
		}, 403, "<Code>RequestTimeTooSkewed</Code>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(tt.req())
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("got %d %s\nwant %d with %q", status, body, tt.status, tt.want)
			}
		})
	}
	if sets := s.Sets("Z1"); len(sets) != 3 || sets[2].Values[0] != "192.0.2.1" {
		t.Errorf("zone = %v: want SOA, NS and the one signed change", sets)
	}
}
