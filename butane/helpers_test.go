package butane

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/vincent-petithory/dataurl"
	"golang.org/x/crypto/ssh"

	"github.com/etcd-agent/etcd-agent/pki"
)

// testNow is inside the committed test CA's validity.
var testNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func testOptions() Options { return Options{DefaultImageTag: "v3.7.3", Now: testNow} }

// testCADir copies the committed test CA to a temporary directory and makes
// the key 0600 there (git does not keep the mode).
func testCADir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"ca.crt": 0o644, "ca.key": 0o600} {
		data, err := os.ReadFile(filepath.Join("testdata", "ca", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadTestSpec parses testdata/specs/<name>.yaml with paths relative to a
// directory holding the test CA.
func loadTestSpec(t *testing.T, name string) Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "specs", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSpec(data, testCADir(t), name)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return s
}

// freshCASpec is a valid spec whose CA is made now by pki.InitCA.
func freshCASpec(t *testing.T) Spec {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := pki.InitCA(dir, pki.CAOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return Spec{
		Cluster:   SpecCluster{Name: "test", Size: 3},
		Discovery: SpecDiscovery{Endpoints: []string{"https://10.0.0.10:2379"}, Token: "abc123"},
		Agent:     SpecAgent{URL: "https://example.com/etcd-agent", SHA512: sha512Hex([]byte("agent"))},
		CA:        SpecCA{Cert: "ca.crt", Key: "ca.key"},
		SSH:       SpecSSH{AuthorizedKeys: []string{testSSHKey(t, 0)}},
		Pointer:   SpecPointer{URL: "s3://bucket/full.ign"},
		baseDir:   dir,
	}
}

// testSSHKey is a deterministic ed25519 authorized_keys line.
func testSSHKey(t *testing.T, i int) string {
	t.Helper()
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = byte(i), byte(i>>8)
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pub))) + " test-key-" + string(rune('a'+i%26))
}

// parseIgnition decodes Ignition JSON into the 3.5 types (3.4 has the same
// shape for everything this package writes).
func parseIgnition(t *testing.T, ign []byte) types.Config {
	t.Helper()
	var c types.Config
	if err := json.Unmarshal(ign, &c); err != nil {
		t.Fatalf("decode ignition: %v", err)
	}
	return c
}

// fileContents decodes a file's inline data URL, gunzipping if needed.
func fileContents(t *testing.T, f types.File) []byte {
	t.Helper()
	if f.Contents.Source == nil {
		return nil
	}
	u, err := dataurl.DecodeString(*f.Contents.Source)
	if err != nil {
		t.Fatalf("%s: decode data URL: %v", f.Path, err)
	}
	if f.Contents.Compression == nil || *f.Contents.Compression == "" {
		return u.Data
	}
	zr, err := gzip.NewReader(bytes.NewReader(u.Data))
	if err != nil {
		t.Fatalf("%s: gunzip: %v", f.Path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: gunzip: %v", f.Path, err)
	}
	return data
}

func findFile(t *testing.T, c types.Config, path string) types.File {
	t.Helper()
	for _, f := range c.Storage.Files {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("no file %s in the Ignition config", path)
	return types.File{}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
