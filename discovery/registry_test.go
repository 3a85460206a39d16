package discovery

import (
	"errors"
	"strings"
	"testing"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
)

func reg(t *testing.T, token, name, peerURL string, rev int64) Registration {
	t.Helper()
	id, err := MemberID(token, Member{Name: name, PeerURL: peerURL})
	if err != nil {
		t.Fatal(err)
	}
	return Registration{ID: id, Name: name, PeerURL: peerURL, CreateRevision: rev}
}

func TestMemberIDMatchesEtcd(t *testing.T) {
	for _, tc := range []struct{ token, url string }{
		{"etcd-cluster", "https://10.0.1.5:2380"},
		{"0123456789abcdef", "https://127.0.0.21:2380"},
		{"https://discovery.etcd.io/3e86b59982e49066c5d813af1c2e2579cbf573de", "http://10.0.0.1:2380"},
	} {
		urls, err := types.NewURLs([]string{tc.url})
		if err != nil {
			t.Fatal(err)
		}
		want := membership.NewMember("any", urls, tc.token, nil).ID.String()
		got, err := MemberID(tc.token, Member{Name: "n", PeerURL: tc.url})
		if err != nil || got != want {
			t.Errorf("MemberID(%q, %q) = %q, %v; want %q", tc.token, tc.url, got, err, want)
		}
	}
	// The ID depends on the token and URL only, never on the name.
	a, _ := MemberID("t", Member{Name: "a", PeerURL: "https://10.0.0.1:2380"})
	b, _ := MemberID("t", Member{Name: "b", PeerURL: "https://10.0.0.1:2380"})
	c, _ := MemberID("u", Member{Name: "a", PeerURL: "https://10.0.0.1:2380"})
	if a != b || a == c {
		t.Errorf("IDs: same URL other name %s vs %s, other token %s", a, b, c)
	}
}

func TestParseRegistration(t *testing.T) {
	for _, tc := range []struct {
		value, wantName, wantURL string
		wantErr                  bool
	}{
		{value: "n1=https://10.0.0.1:2380", wantName: "n1", wantURL: "https://10.0.0.1:2380"},
		{value: " n1=https://10.0.0.1:2380\n", wantName: "n1", wantURL: "https://10.0.0.1:2380"},
		{value: "n1=https://10.0.0.2:2380,n1=https://10.0.0.1:2380", wantName: "n1", wantURL: "https://10.0.0.1:2380,https://10.0.0.2:2380"},
		{value: "garbage", wantErr: true},
		{value: "n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380", wantErr: true},
		{value: "n1=ftp://10.0.0.1:2380", wantErr: true},
		{value: "n1=https://10.0.0.1", wantErr: true},
		{value: "=https://10.0.0.1:2380", wantErr: true},
	} {
		r, err := parseRegistration("id", tc.value, 7)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseRegistration(%q) error = %v, want error %v", tc.value, err, tc.wantErr)
			continue
		}
		if err == nil && (r.Name != tc.wantName || r.PeerURL != tc.wantURL || r.CreateRevision != 7) {
			t.Errorf("parseRegistration(%q) = %+v", tc.value, r)
		}
	}
	m := Member{Name: "n1", PeerURL: "https://10.0.0.1:2380,https://10.0.0.2:2380"}
	if got, want := m.String(), "n1=https://10.0.0.1:2380,n1=https://10.0.0.2:2380"; got != want {
		t.Errorf("multi-URL member renders %q, want %q", got, want)
	}
}

func TestAssess(t *testing.T) {
	const tok = "tok"
	self := Member{Name: "self", PeerURL: "https://10.0.0.9:2380"}
	selfID, _ := MemberID(tok, self)
	a := reg(t, tok, "a", "https://10.0.0.1:2380", 10)
	b := reg(t, tok, "b", "https://10.0.0.2:2380", 11)
	c := reg(t, tok, "c", "https://10.0.0.3:2380", 12)
	me := reg(t, tok, "self", "https://10.0.0.9:2380", 13)
	early := me
	early.CreateRevision = 5

	for _, tc := range []struct {
		name        string
		size        int
		regs        []Registration
		wantWinners []string
		wantReg     bool
		wantWins    bool
		wantFull    bool
		wantErr     error
		errHas      []string
	}{
		{name: "empty", size: 3, wantWinners: []string{}},
		{name: "two others, self missing", size: 3, regs: []Registration{b, a}, wantWinners: []string{"a", "b"}},
		{name: "self registered, waiting", size: 3, regs: []Registration{me, a}, wantWinners: []string{"a", "self"}, wantReg: true, wantWins: true},
		{name: "full with self last", size: 3, regs: []Registration{me, b, a}, wantWinners: []string{"a", "b", "self"}, wantReg: true, wantWins: true, wantFull: true},
		{name: "full without self", size: 3, regs: []Registration{c, b, a}, wantWinners: []string{"a", "b", "c"}, wantFull: true},
		{name: "self registered too late", size: 3, regs: []Registration{me, c, b, a}, wantWinners: []string{"a", "b", "c"}, wantReg: true, wantFull: true},
		{name: "self registered first of four", size: 3, regs: []Registration{c, b, a, early}, wantWinners: []string{"self", "a", "b"}, wantReg: true, wantWins: true, wantFull: true},
		{name: "size one", size: 1, regs: []Registration{b, a}, wantWinners: []string{"a"}, wantFull: true},
		{
			name: "name taken by another peer URL", size: 3,
			regs:    []Registration{a, reg(t, tok, "self", "https://10.0.0.8:2380", 11)},
			wantErr: ErrConflict, errHas: []string{`"self"`, "https://10.0.0.8:2380", "https://10.0.0.9:2380"},
		},
		{
			name: "own peer URL under another name", size: 3,
			regs:    []Registration{{ID: selfID, Name: "other", PeerURL: self.PeerURL, CreateRevision: 3}},
			wantErr: ErrConflict, errHas: []string{"other=https://10.0.0.9:2380", "self=https://10.0.0.9:2380"},
		},
		{
			name: "two winners share a name", size: 3,
			regs:    []Registration{a, reg(t, tok, "a", "https://10.0.0.7:2380", 11)},
			wantErr: ErrConflict, errHas: []string{"https://10.0.0.1:2380", "https://10.0.0.7:2380"},
		},
		{name: "bad size", size: 0, wantErr: errAny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := assess(tc.size, tc.regs, self, selfID)
			if tc.wantErr != nil {
				if err == nil || (tc.wantErr != errAny && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not name %s", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, w := range st.Winners {
				names = append(names, w.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.wantWinners, ",") {
				t.Errorf("winners = %v, want %v", names, tc.wantWinners)
			}
			if st.SelfRegistered != tc.wantReg || st.SelfWins != tc.wantWins || st.Full() != tc.wantFull {
				t.Errorf("registered/wins/full = %v/%v/%v, want %v/%v/%v", st.SelfRegistered, st.SelfWins, st.Full(), tc.wantReg, tc.wantWins, tc.wantFull)
			}
			if p := st.Progress(); p.Registered != len(tc.wantWinners) || p.Size != tc.size || p.Waiting() != tc.size-len(tc.wantWinners) {
				t.Errorf("progress = %+v", p)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestSizeWarning(t *testing.T) {
	for size, warn := range map[int]bool{-1: true, 0: true, 1: true, 2: true, 3: false, 4: true, 5: false, 7: false, 9: true} {
		if got := SizeWarning(size); (got != "") != warn {
			t.Errorf("SizeWarning(%d) = %q, want warning %v", size, got, warn)
		}
	}
}

func TestResultInitialCluster(t *testing.T) {
	r := Result{Members: []Member{{"a", "https://10.0.0.1:2380"}, {"b", "https://10.0.0.2:2380"}}}
	if got, want := r.InitialCluster(), "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380"; got != want {
		t.Errorf("InitialCluster = %q, want %q", got, want)
	}
}
