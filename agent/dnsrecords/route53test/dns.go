package route53test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// DNS is an authoritative DNS server (github.com/miekg/dns) answering from
// one hosted zone of a Server, as Route 53's name servers answer from it,
// over UDP and TCP on a loopback port.
type DNS struct {
	// Addr is the host:port it answers on (UDP and TCP).
	Addr string
}

// ServeDNS starts the DNS server for zone id, stopped at the end of the
// test. It answers from the record sets as they are at each query.
func (s *Server) ServeDNS(t testing.TB, id string) *DNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { _ = w.WriteMsg(s.answer(id, q)) })
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return &DNS{Addr: pc.LocalAddr().String()}
}

// Resolver is a Go resolver that asks only this server, as a host whose
// resolv.conf names it would.
func (d *DNS) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, network, d.Addr)
	}}
}

// answer is the authoritative answer to q from zone id's record sets:
// NXDOMAIN for a name the zone does not hold (or a zone it is not in), no
// answers for a name without the type asked.
func (s *Server) answer(id string, q *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zones[id]
	for _, question := range q.Question {
		name := strings.ToLower(question.Name)
		if z == nil || (name != z.apex && !strings.HasSuffix(name, "."+z.apex)) {
			m.Rcode = dns.RcodeRefused
			return m
		}
		found := false
		for k, set := range z.sets {
			if k.name != name {
				continue
			}
			found = true
			if k.typ != dns.TypeToString[question.Qtype] {
				continue
			}
			for _, v := range set.Values {
				rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", set.Name, set.TTL, set.Type, v))
				if err != nil {
					m.Rcode = dns.RcodeServerFailure
					return m
				}
				m.Answer = append(m.Answer, rr)
			}
		}
		if !found {
			m.Rcode = dns.RcodeNameError
		}
	}
	return m
}
