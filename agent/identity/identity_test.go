package identity

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestMemberName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ip   netip.Addr
		want string
	}{
		{"ipv4", netip.MustParseAddr("10.0.1.5"), "etcd-10-0-1-5"},
		{"loopback for local mode", netip.MustParseAddr("127.0.0.3"), "etcd-127-0-0-3"},
		{"ipv6 compressed", netip.MustParseAddr("fd00::1"), "etcd-fd00--1"},
		{"ipv6 full", netip.MustParseAddr("2001:db8:1:2:3:4:5:6"), "etcd-2001-db8-1-2-3-4-5-6"},
		{"ipv6 upper case input is lower-cased", netip.MustParseAddr("FD00::ABCD"), "etcd-fd00--abcd"},
		{"ipv4-mapped named as ipv4", netip.MustParseAddr("::ffff:10.0.1.5"), "etcd-10-0-1-5"},
		{"zone dropped", netip.MustParseAddr("fe80::1%eth0"), "etcd-fe80--1"},
		{"invalid", netip.Addr{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MemberName(tt.ip); got != tt.want {
				t.Errorf("MemberName(%v) = %q, want %q", tt.ip, got, tt.want)
			}
		})
	}
}

func TestStatic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      Static
		want    Identity
		wantErr string
	}{
		{
			name: "defaults from IP",
			in:   Static{IP: netip.MustParseAddr("127.0.0.2")},
			want: Identity{Name: "etcd-127-0-0-2", PrivateIP: netip.MustParseAddr("127.0.0.2"), Hostname: "etcd-127-0-0-2", Source: SourceStatic},
		},
		{
			name: "explicit name, hostname follows it",
			in:   Static{IP: netip.MustParseAddr("127.0.0.2"), Name: "node-b"},
			want: Identity{Name: "node-b", PrivateIP: netip.MustParseAddr("127.0.0.2"), Hostname: "node-b", Source: SourceStatic},
		},
		{
			name: "explicit name and hostname",
			in:   Static{IP: netip.MustParseAddr("10.0.0.9"), Name: "node-c", Hostname: "c.example.internal"},
			want: Identity{Name: "node-c", PrivateIP: netip.MustParseAddr("10.0.0.9"), Hostname: "c.example.internal", Source: SourceStatic},
		},
		{
			name: "ipv4-mapped address is unmapped",
			in:   Static{IP: netip.MustParseAddr("::ffff:127.0.0.4")},
			want: Identity{Name: "etcd-127-0-0-4", PrivateIP: netip.MustParseAddr("127.0.0.4"), Hostname: "etcd-127-0-0-4", Source: SourceStatic},
		},
		{name: "IP missing", in: Static{Name: "x"}, wantErr: "IP is not set"},
		{name: "IP unspecified", in: Static{IP: netip.IPv4Unspecified()}, wantErr: "0.0.0.0 is unspecified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Identity(t.Context())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Identity() error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Identity(): %v", err)
			}
			if got != tt.want {
				t.Errorf("Identity():\n got %+v\nwant %+v", got, tt.want)
			}
			if got.PublicIP.IsValid() || got.InstanceID != "" || got.AvailabilityZone != "" || got.Region != "" {
				t.Errorf("static identity has EC2 facts: %+v", got)
			}
		})
	}
}

func TestStaticHonoursCancelledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := (Static{IP: netip.MustParseAddr("127.0.0.1")}).Identity(ctx); err == nil {
		t.Fatal("Identity succeeded with a cancelled context")
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	t.Parallel()
	for attempt := 1; attempt <= 70; attempt++ {
		d := min(backoffBase<<min(attempt-1, 10), backoffMax)
		seen := map[bool]bool{}
		for range 50 {
			got := backoff(attempt)
			if got < d/2 || got >= d {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", attempt, got, d/2, d)
			}
			seen[got == backoff(attempt)] = true
		}
		if !seen[false] {
			t.Errorf("backoff(%d) is not jittered", attempt)
		}
	}
}
