package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcd-agent/etcd-agent/agent/config"
	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/pki"
)

func certCommand(e env) *cobra.Command {
	return groupCommand("cert", "issue certificates for applications, check expiries",
		"Issue client certificates for applications; check every certificate's expiry on this node.",
		certIssueCommand(e), certCheckCommand(e))
}

// issuedCert is `cert issue -o json`.
type issuedCert struct {
	Cert       string    `json:"cert"`
	Key        string    `json:"key"`
	CA         string    `json:"ca"`
	CommonName string    `json:"common_name"`
	NotAfter   time.Time `json:"not_after"`
	Etcdctl    string    `json:"etcdctl"`
}

func certIssueCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "issue --role client --cn NAME [--out DIR] [--validity 365d] [--ca-dir DIR | --config PATH] [--replace]",
		Short: "issue a client certificate for an application",
		Long: "Issue a client certificate for an application (Patroni, a Kubernetes API server, a script)\n" +
			"from the cluster CA: DIR/NAME.crt, DIR/NAME.key (0600) and DIR/ca.crt, and print an etcdctl line\n" +
			"that uses them. Run it where the CA key is: a node (the shipped CA in the config's pki.caCert and\n" +
			"pki.caKey, as root) or the host that ran `etcd-agent ca init` (--ca-dir). The certificate opens\n" +
			"etcd's client port only; the peer port accepts the members' peer certificates alone.",
		Args: noArgs,
	}
	fs := c.Flags()
	cf := addConfigFlags(fs)
	role := fs.String("role", "", "the certificate's role: client (the only one an application needs)")
	cn := fs.String("cn", "", "the application's name: the certificate's common name and the files' names")
	outDir := fs.String("out", ".", "directory to write NAME.crt, NAME.key and ca.crt into (created 0700 if missing)")
	caDir := fs.String("ca-dir", "", "directory holding ca.crt and ca.key (default: the config's pki.caCert and pki.caKey)")
	validity := fs.String("validity", "365d", "validity (e.g. 90d, 2160h); capped at the CA's own expiry")
	replace := fs.Bool("replace", false, "issue a new certificate and key in place of existing NAME.crt and NAME.key")
	out := addOutputFlag(fs)
	c.RunE = func(c *cobra.Command, _ []string) error {
		var problems []config.Problem
		if *role != pki.RoleClient {
			problems = append(problems, config.Problem{Field: "--role", Value: *role, Problem: "must be client", Fix: "pass --role client (servers and peers get their certificates from their agent)"})
		}
		if *cn == "" {
			problems = append(problems, config.Problem{Field: "--cn", Problem: "is required", Fix: "pass --cn NAME, the application's name (e.g. patroni)"})
		} else if err := pki.CheckAppCommonName(*cn); err != nil {
			problems = append(problems, config.Problem{Field: "--cn", Value: *cn, Problem: err.Error(), Fix: "pick the application's name"})
		}
		v, err := config.ParseDuration(*validity)
		if err != nil || v.D() <= 0 {
			problems = append(problems, config.Problem{Field: "--validity", Value: *validity, Problem: "not a positive duration", Fix: "e.g. 365d or 2160h"})
		}
		if len(problems) > 0 {
			return &config.Error{Problems: problems}
		}
		certPath, keyPath := filepath.Join(*caDir, pki.CACertFile), filepath.Join(*caDir, pki.CAKeyFile)
		var endpoints []string
		if *caDir == "" {
			cfg, _, err := cf.load(e)
			if err != nil {
				return err
			}
			certPath, keyPath = cfg.PKI.CACert, cfg.PKI.CAKey
			if rep, err := agentreport.Read(cfg.Agent.StatusFile); err == nil {
				endpoints = reportEndpoints(rep)
			}
		}
		ca, err := pki.LoadCA(certPath, keyPath, time.Now())
		if err != nil {
			return fmt.Errorf("load the CA (%s, %s): %w", certPath, keyPath, err)
		}
		issued, err := ca.IssueAppClient(*outDir, *cn, v.D(), time.Now(), *replace)
		if err != nil {
			return err
		}
		eps := "https://ETCD_HOST:2379"
		if len(endpoints) > 0 {
			eps = strings.Join(endpoints, ",")
		}
		etcdctl := fmt.Sprintf("etcdctl --endpoints %s --cacert %s --cert %s --key %s endpoint health",
			eps, issued.CAPath, issued.CertPath, issued.KeyPath)
		if *out != formatTable {
			return printDoc(e.stdout, *out, issuedCert{Cert: issued.CertPath, Key: issued.KeyPath, CA: issued.CAPath,
				CommonName: issued.CommonName, NotAfter: issued.NotAfter, Etcdctl: etcdctl})
		}
		fmt.Fprintf(e.stdout, "certificate: %s (CN %s, client auth, expires %s)\nkey:         %s (mode 0600: give it to the application only)\nCA:          %s\n\n",
			issued.CertPath, issued.CommonName, issued.NotAfter.Format(time.RFC3339), issued.KeyPath, issued.CAPath)
		fmt.Fprintln(e.stdout, etcdctl)
		return nil
	}
	return c
}

func certCheckCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "check",
		Short: "every certificate's expiry on this node (exit 3 when one is due)",
		Long: "Show every certificate on this node — the shipped CA, the CA bundle and the agent's server,\n" +
			"peer, client and operator certificates in pki.dir, and any other .crt there — with its expiry.\n" +
			"The agent renews its own leaf certificates pki.renewBefore ahead; one still due means renewal\n" +
			"failed (see `etcd-agent status`), and a due CA needs a rotation (README \"CA rotation\").\n\n" +
			"Exit codes: 0 none due; 3 at least one has less than --within left (default pki.renewBefore)\n" +
			"or is expired; 1 a certificate file does not parse; 78 configuration error.",
		Args: noArgs,
	}
	cf := addConfigFlags(c.Flags())
	out := addOutputFlag(c.Flags())
	within := c.Flags().Duration("within", 0, "report a certificate as due with less than this left (default: pki.renewBefore)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		cfg, _, err := cf.load(e)
		if err != nil {
			return err
		}
		margin := cfg.PKI.RenewBefore.D()
		if *within > 0 {
			margin = *within
		}
		files, _ := filepath.Glob(filepath.Join(cfg.PKI.Dir, "*.crt"))
		files = append([]string{cfg.PKI.CACert}, files...)
		exps, readErr := pki.CheckExpiries(slices.Compact(files), time.Now(), margin)
		if err := renderExpiries(e, exps, *out, margin); err != nil {
			return err
		}
		if readErr != nil {
			return fmt.Errorf("check certificates: %w", readErr)
		}
		for _, x := range exps {
			if x.Due {
				return &exitError{code: exitUnhealthy, err: fmt.Errorf("certificates due: less than %s left", margin)}
			}
		}
		return nil
	}
	return c
}

// certJSON is one certificate in `cert check -o json` (snake_case, as
// `status -o json`).
type certJSON struct {
	Path       string    `json:"path"`
	CommonName string    `json:"common_name"`
	Issuer     string    `json:"issuer"`
	CA         bool      `json:"ca"`
	NotAfter   time.Time `json:"not_after"`
	DaysLeft   int       `json:"days_left"`
	Due        bool      `json:"due"`
}

func renderExpiries(e env, exps []pki.Expiry, format outputFormat, margin time.Duration) error {
	if format != formatTable {
		out := make([]certJSON, 0, len(exps))
		for _, x := range exps {
			out = append(out, certJSON{Path: x.Path, CommonName: x.CommonName, Issuer: x.Issuer, CA: x.IsCA,
				NotAfter: x.NotAfter, DaysLeft: int(x.Left.Hours() / 24), Due: x.Due})
		}
		return printDoc(e.stdout, format, map[string]any{"certificates": out, "due_within": margin.String()})
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tCN\tISSUER\tEXPIRES\tLEFT\t")
	for _, x := range exps {
		left := fmt.Sprintf("%dd", int(x.Left.Hours()/24))
		switch {
		case x.Left < 0:
			left = "EXPIRED"
		case x.Due:
			left += " DUE"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", x.Path, x.CommonName, x.Issuer, x.NotAfter.Format(time.DateOnly), left)
	}
	return tw.Flush()
}

// reportEndpoints are the cluster's client URLs as the agent's report
// knows them.
func reportEndpoints(rep agentreport.NodeReport) []string {
	if len(rep.Endpoints) > 0 {
		return rep.Endpoints
	}
	if rep.ClientURL != "" {
		return []string{rep.ClientURL}
	}
	return nil
}
