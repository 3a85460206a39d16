package status

import (
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/pki"
)

// recentHistory is how many transitions and decisions the view keeps.
const recentHistory = 5

// certFiles are the node's certificates, in the order status shows them.
var certFiles = []struct{ role, file string }{
	{pki.RoleServer, pki.ServerCertFile},
	{pki.RolePeer, pki.PeerCertFile},
	{pki.RoleClient, pki.ClientCertFile},
	{pki.RoleOperator, pki.OperatorCertFile},
}

// nodeView describes this node's agent from its report and, when
// o.CertDir is set, the certificates on disk.
func nodeView(o Options) Node {
	var n Node
	switch {
	case o.Report != nil:
		r := o.Report
		n.Name, n.PrivateIP, n.Hostname, n.InstanceID, n.Zone = r.Name, r.PrivateIP, r.Hostname, r.InstanceID, r.AvailabilityZone
		n.Phase, n.Message, n.Ready, n.LastError = r.Phase, r.Message, r.Ready, r.LastError
		n.AgentPID, n.AgentVersion, n.UpdatedAt = r.PID, r.Version, r.UpdatedAt
		n.AgentAlive, n.AgentState = r.Alive(o.Now, o.ReportMaxAge)
		n.Transitions = lastN(r.Transitions, recentHistory)
		n.Decisions = lastN(r.Decisions, recentHistory)
		n.Problems = slices.Clone(r.Problems)
		n.Backup = r.Backup
		n.Maintenance, n.EtcdChange = r.Maintenance, r.EtcdChange
		n.FleetLock = r.FleetLock
		for _, c := range r.Certs {
			n.Certs = setCert(n.Certs, c.Role, c.NotAfter, c.Issuer, o.Now)
		}
	case o.ReportErr != nil && errors.Is(o.ReportErr, fs.ErrNotExist):
		n.ReportError = "no agent report: the agent has not started on this node, or has stopped (" + o.ReportErr.Error() + ")"
		n.AgentState = n.ReportError
	case o.ReportErr != nil:
		n.ReportError = o.ReportErr.Error()
		n.AgentState = "cannot read the agent report: " + o.ReportErr.Error()
	default:
		n.ReportError = "no agent report"
		n.AgentState = n.ReportError
	}
	if o.CertDir != "" {
		for _, cf := range certFiles {
			if c, err := pki.LoadCertificate(filepath.Join(o.CertDir, cf.file)); err == nil {
				n.Certs = setCert(n.Certs, cf.role, c.NotAfter, c.Issuer.CommonName, o.Now)
			}
		}
	}
	return n
}

// setCert sets role's expiry and issuer in certs, keeping the order of
// certFiles. An issuer of the same name keeps the report's fingerprint.
func setCert(certs []Cert, role string, notAfter time.Time, issuer string, now time.Time) []Cert {
	c := Cert{Role: role, NotAfter: notAfter.UTC(), DaysLeft: daysLeft(notAfter, now), Issuer: issuer}
	for i := range certs {
		if certs[i].Role == role {
			if strings.HasPrefix(certs[i].Issuer, issuer+" sha256:") {
				c.Issuer = certs[i].Issuer
			}
			certs[i] = c
			return certs
		}
	}
	certs = append(certs, c)
	rank := func(role string) int {
		for i, cf := range certFiles {
			if cf.role == role {
				return i
			}
		}
		return len(certFiles)
	}
	for i := len(certs) - 1; i > 0 && rank(certs[i].Role) < rank(certs[i-1].Role); i-- {
		certs[i], certs[i-1] = certs[i-1], certs[i]
	}
	return certs
}

// daysLeft counts whole days from now to t, rounding down (negative once past).
func daysLeft(t, now time.Time) int {
	return int(math.Floor(t.Sub(now).Hours() / 24))
}

func lastN[T any](s []T, n int) []T {
	if len(s) <= n {
		return append([]T(nil), s...)
	}
	return append([]T(nil), s[len(s)-n:]...)
}
