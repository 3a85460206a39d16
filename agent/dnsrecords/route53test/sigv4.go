package route53test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// verifySigV4 checks r's Authorization header against the credentials by
// computing the signature anew, following AWS's documented Signature
// Version 4 algorithm (canonical request, string to sign, derived key),
// independently of the SDK's signer. body is the request's payload.
func (s *Server) verifySigV4(r *http.Request, body []byte) error {
	auth := r.Header.Get("Authorization")
	algo, rest, ok := strings.Cut(auth, " ")
	if !ok || algo != "AWS4-HMAC-SHA256" {
		return fmt.Errorf("authorization %q is not AWS4-HMAC-SHA256", auth)
	}
	fields := map[string]string{}
	for f := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return fmt.Errorf("credential %q is not KEY/DATE/REGION/SERVICE/aws4_request", fields["Credential"])
	}
	key, day, region, service := cred[0], cred[1], cred[2], cred[3]
	switch {
	case key != s.AccessKey:
		return fmt.Errorf("access key %q is not the test's", key)
	case service != "route53":
		return fmt.Errorf("signed for service %q, want route53", service)
	case region != s.Region:
		return fmt.Errorf("signed for region %q, want %q", region, s.Region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return fmt.Errorf("X-Amz-Date %q: %w", amzDate, err)
	}
	if at.Format("20060102") != day {
		return fmt.Errorf("credential date %s is not X-Amz-Date's %s", day, amzDate)
	}
	if skew := time.Since(at); skew > 5*time.Minute || skew < -5*time.Minute {
		return fmt.Errorf("RequestTimeTooSkewed: X-Amz-Date %s is %s from now", amzDate, skew)
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !slices.IsSorted(signed) || !slices.Contains(signed, "host") || !slices.Contains(signed, "x-amz-date") {
		return fmt.Errorf("signed headers %q must be sorted and include host and x-amz-date", fields["SignedHeaders"])
	}
	var canonHeaders strings.Builder
	for _, h := range signed {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = fmt.Sprint(r.ContentLength)
		default:
			vals := r.Header.Values(h)
			if len(vals) == 0 {
				return fmt.Errorf("signed header %q is not in the request", h)
			}
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		fmt.Fprintf(&canonHeaders, "%s:%s\n", h, v)
	}
	payload := sha256.Sum256(body)
	canonical := strings.Join([]string{
		r.Method,
		canonicalPath(r.URL),
		canonicalQuery(r.URL.Query()),
		canonHeaders.String(),
		fields["SignedHeaders"],
		hex.EncodeToString(payload[:]),
	}, "\n")
	scope := strings.Join(cred[1:], "/")
	creq := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creq[:])
	k := hmacSHA256([]byte("AWS4"+s.SecretKey), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return fmt.Errorf("SignatureDoesNotMatch: the request's signature %s is not %s (canonical request:\n%s)", fields["Signature"], want, canonical)
	}
	return nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalPath is the URI-encoded path: each segment encoded once more
// (every service but S3 signs the path encoded twice).
func canonicalPath(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = uriEncode(s)
	}
	return strings.Join(segs, "/")
}

// canonicalQuery sorts the parameters by name and value, each encoded.
func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, uriEncode(k)+"="+uriEncode(v))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// uriEncode encodes every byte but RFC 3986's unreserved characters.
func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
