package butane

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/etcd-agent/etcd-agent/pki"
)

// inputs are the files the spec points at, read and checked.
type inputs struct {
	caCert, caKey []byte
	sshKeys       []string
}

// readInputs reads the CA and SSH keys the spec names. It refuses, naming
// the field and path, what the agent would refuse at boot: a CA key readable
// by group or others, a key that does not match the certificate, a CA that
// is not valid at now.
func (s Spec) readInputs(ps *problems, now time.Time) inputs {
	var in inputs
	in.sshKeys = s.readSSHKeys(ps)
	if s.CA.Cert == "" || s.CA.Key == "" {
		return in
	}
	certPath, keyPath := s.path(s.CA.Cert), s.path(s.CA.Key)
	fi, err := os.Stat(keyPath)
	switch {
	case err != nil:
		ps.add("ca.key", keyPath, "cannot be read: "+err.Error(), "point ca.key at ca.key from `etcd-agent ca init`")
		return in
	case fi.Mode().Perm()&0o077 != 0:
		ps.add("ca.key", keyPath, fmt.Sprintf("has mode %#o, accessible by group or others", fi.Mode().Perm()), "chmod 600 "+keyPath)
		return in
	}
	ok := true
	if in.caKey, err = os.ReadFile(keyPath); err != nil {
		ps.add("ca.key", keyPath, "cannot be read: "+err.Error(), "make it readable by you")
		ok = false
	}
	if in.caCert, err = os.ReadFile(certPath); err != nil {
		ps.add("ca.cert", certPath, "cannot be read: "+err.Error(), "point ca.cert at ca.crt from `etcd-agent ca init`")
		ok = false
	}
	if ok {
		if _, err := pki.LoadCA(certPath, keyPath, now); err != nil {
			ps.add("ca", "", err.Error(), "use the ca.crt and ca.key pair from `etcd-agent ca init`")
		}
	}
	return in
}

// readSSHKeys returns the authorized keys from both spec fields, each
// checked with the SSH parser.
func (s Spec) readSSHKeys(ps *problems) []string {
	var keys []string
	for i, line := range s.SSH.AuthorizedKeys {
		field := fmt.Sprintf("ssh.authorizedKeys[%d]", i)
		if k, ok := checkSSHKey(ps, field, line); ok {
			keys = append(keys, k)
		}
	}
	if s.SSH.AuthorizedKeysFile != "" {
		path := s.path(s.SSH.AuthorizedKeysFile)
		data, err := os.ReadFile(path)
		if err != nil {
			ps.add("ssh.authorizedKeysFile", path, "cannot be read: "+err.Error(), "point it at a public key file such as ~/.ssh/id_ed25519.pub")
		} else {
			sc := bufio.NewScanner(bytes.NewReader(data))
			for n := 1; sc.Scan(); n++ {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				if k, ok := checkSSHKey(ps, fmt.Sprintf("ssh.authorizedKeysFile %s line %d", path, n), line); ok {
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) == 0 && len(s.SSH.AuthorizedKeys) == 0 && s.SSH.AuthorizedKeysFile == "" {
		ps.add("ssh.authorizedKeys", "", "no SSH public key is set: nobody could log in to run `etcd-agent status`",
			"add your public key (ssh.authorizedKeys) or a key file (ssh.authorizedKeysFile)")
	}
	return keys
}

// checkSSHKey parses one authorized_keys line and returns it trimmed.
func checkSSHKey(ps *problems, field, line string) (string, bool) {
	line = strings.TrimSpace(line)
	short := line
	if len(short) > 40 {
		short = short[:40] + "..."
	}
	if strings.HasPrefix(line, "-----BEGIN") {
		ps.add(field, short, "is a private key", "use the public key (the .pub file)")
		return "", false
	}
	if strings.ContainsAny(line, "\r\n") {
		ps.add(field, short, "holds more than one line", "give one key per list entry")
		return "", false
	}
	if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil || len(rest) > 0 {
		ps.add(field, short, "is not an SSH public key", "paste one line of the .pub file, like \"ssh-ed25519 AAAA... you@host\"")
		return "", false
	}
	return line, true
}
