package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/etcd-agent/etcd-agent/agent/config"
	agentreport "github.com/etcd-agent/etcd-agent/agent/report"
	"github.com/etcd-agent/etcd-agent/agent/rollout"
	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
	"github.com/etcd-agent/etcd-agent/pki"
)

// What the operator pushes at each step (docs/how-it-works.md "CA rotation").
var rotationSteps = map[int]string{
	rollout.StepBundle:  "ca.crt := the bundle of old and new CA (etcd-agent ca rotate bundle), ca.key unchanged",
	rollout.StepNewKey:  "ca.key := the new CA's key",
	rollout.StepDropOld: "ca.crt := the new CA only",
}

func caRotateCommand(e env) *cobra.Command {
	return groupCommand("rotate", "drive a CA rotation: the bundle, where every member stands, whether a step may be pushed",
		"Drive a CA rotation (README \"CA rotation\"): write the bundle of step 1, see where every member\n"+
			"stands, and check whether a step may be pushed.",
		caRotateBundleCommand(e), caRotateStatusCommand(e), caRotateCheckCommand(e))
}

// writtenBundle is `ca rotate bundle -o json`.
type writtenBundle struct {
	Bundle string   `json:"bundle"`
	CAs    []string `json:"cas"`
}

func caRotateBundleCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "bundle --old OLD.crt --new NEW.crt --out BUNDLE.crt",
		Short: "write the old+new CA bundle of step 1",
		Long: "Write step 1's trust bundle: the old and the new CA certificate, in that order. Push it as\n" +
			"every node's pki.caCert (ca.key unchanged); each member restarts once to trust both.",
		Args: noArgs,
	}
	oldPath := c.Flags().String("old", "", "the CA certificate in use now")
	newPath := c.Flags().String("new", "", "the new CA certificate (etcd-agent ca init --dir creates one)")
	outPath := c.Flags().String("out", "", "where to write the bundle")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		var problems []config.Problem
		var pems [][]byte
		for _, f := range []struct{ flag, path string }{{"--old", *oldPath}, {"--new", *newPath}} {
			b, err := readCA(f.path)
			if err != nil {
				problems = append(problems, config.Problem{Field: f.flag, Value: f.path, Problem: err.Error(), Fix: "name a CA certificate file (PEM)"})
			}
			pems = append(pems, b)
		}
		if *outPath == "" {
			problems = append(problems, config.Problem{Field: "--out", Problem: "is required", Fix: "pass --out bundle.crt"})
		}
		if len(problems) > 0 {
			return &config.Error{Problems: problems}
		}
		bundle := append(append([]byte{}, pems[0]...), pems[1]...)
		if err := atomicfile.Write(*outPath, bundle, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", *outPath, err)
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, writtenBundle{Bundle: *outPath, CAs: pki.BundleCANames(bundle)})
		}
		fmt.Fprintf(e.stdout, "bundle: %s (%s)\nstep 1: push it as every node's pki.caCert; then `etcd-agent ca rotate status --new-ca %s`\n",
			*outPath, strings.Join(pki.BundleCANames(bundle), ", "), *newPath)
		return nil
	}
	return c
}

// readCA reads a PEM file holding exactly one CA certificate.
func readCA(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := pki.LoadCertificate(path)
	if err != nil {
		return nil, err
	}
	if !c.IsCA || len(pki.BundleCANames(b)) != 1 {
		return nil, errors.New("is not one CA certificate")
	}
	return b, nil
}

// rotationFlags are how the rotate commands reach the cluster: the node's
// config (operator certificate, the agent report's endpoints) or, from an
// operator host, etcdctl's own flags.
type rotationFlags struct {
	cf                                  *configFlags
	endpoints, cacert, cert, key, newCA *string
}

func addRotationFlags(fs *pflag.FlagSet) rotationFlags {
	return rotationFlags{
		cf:        addConfigFlags(fs),
		endpoints: fs.String("endpoints", "", "client URLs (default: from this node's agent report)"),
		cacert:    fs.String("cacert", "", "from an operator host: the CA bundle to verify the members with"),
		cert:      fs.String("cert", "", "from an operator host: a client certificate of the cluster CA (etcd-agent cert issue)"),
		key:       fs.String("key", "", "from an operator host: its key"),
		newCA:     fs.String("new-ca", "", "the new CA certificate the rotation moves to"),
	}
}

// rotation reads every member's record and places it in the rotation.
func (f rotationFlags) rotation(ctx context.Context, e env) (rollout.Rotation, error) {
	newPEM, err := readCA(*f.newCA)
	if err != nil {
		return rollout.Rotation{}, &config.Error{Problems: []config.Problem{{Field: "--new-ca", Value: *f.newCA, Problem: err.Error(), Fix: "name the new CA certificate file"}}}
	}
	newCA := pki.BundleCANames(newPEM)[0]
	eps := splitList(*f.endpoints)
	var tlsCfg *tls.Config
	if *f.cert != "" {
		tlsCfg, err = etcdctlTLS(*f.cacert, *f.cert, *f.key)
	} else {
		var cfg *config.Config
		if cfg, _, err = f.cf.load(e); err != nil {
			return rollout.Rotation{}, err
		}
		tlsCfg, err = pki.ClientTLS(cfg.PKI.Dir, pki.OperatorCertFile, pki.OperatorKeyFile)
		if len(eps) == 0 {
			if rep, rerr := agentreport.Read(cfg.Agent.StatusFile); rerr == nil {
				eps = reportEndpoints(rep)
			}
		}
	}
	if err != nil {
		return rollout.Rotation{}, fmt.Errorf("client certificate: %w", err)
	}
	if len(eps) == 0 {
		return rollout.Rotation{}, errors.New("no endpoints: pass --endpoints https://HOST:2379 (no agent report here names them)")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return rollout.Rotation{}, fmt.Errorf("connect to %s: %w", strings.Join(eps, ","), err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		return rollout.Rotation{}, fmt.Errorf("list the members: %w", err)
	}
	var names []string
	for _, m := range ml.Members {
		name := m.Name
		if name == "" {
			name = fmt.Sprintf("%x (not started)", m.ID)
		}
		names = append(names, name)
	}
	states, err := rollout.ReadCAStates(ctx, cli)
	if err != nil {
		return rollout.Rotation{}, err
	}
	return rollout.PlanRotation(names, states, newCA), nil
}

// etcdctlTLS is the client TLS etcdctl's --cacert, --cert and --key make.
func etcdctlTLS(cacert, cert, key string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("--cert %s, --key %s: %w", cert, key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if cacert != "" {
		b, err := os.ReadFile(cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--cacert %s holds no certificate", cacert)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func caRotateStatusCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "status --new-ca NEW.crt [--config PATH | --endpoints URL,... --cacert F --cert F --key F]",
		Short: "every member's step and the next step",
		Long: "Where every member stands in the rotation to NEW.crt, from the records the agents keep in the\n" +
			"cluster: whether its etcd trusts the new CA (and still the old), and whether its certificates\n" +
			"are the new CA's; then the step whose files may be pushed now.",
		Args: noArgs,
	}
	rf := addRotationFlags(c.Flags())
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		r, err := rf.rotation(c.Context(), e)
		if err != nil {
			return err
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, r)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tTRUSTS NEW\tTRUSTS OLD\tCERTS FROM NEW\tSTEP DONE\tRECORDED")
		for _, m := range r.Members {
			at := m.At
			if !m.Recorded {
				at = "no record"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", m.Member, yesNo(m.TrustsNew), yesNo(m.TrustsOther), yesNo(m.IssuedByNew), m.Done, at)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if r.Next == 0 {
			fmt.Fprintf(e.stdout, "\nrotation to %s complete\n", r.NewCA)
		} else {
			fmt.Fprintf(e.stdout, "\nnext: step %d: %s\n", r.Next, rotationSteps[r.Next])
		}
		return nil
	}
	return c
}

// allowedStep is `ca rotate check -o json` when the step may be pushed.
type allowedStep struct {
	Step int    `json:"step"`
	Push string `json:"push"`
}

func caRotateCheckCommand(e env) *cobra.Command {
	c := &cobra.Command{
		Use:   "check --step 1|2|3 --new-ca NEW.crt [--config PATH | --endpoints URL,... --cacert F --cert F --key F]",
		Short: "may step N be pushed now (exit 0) or not (exit 3)",
		Long: "Exit 0 when the files of step N may be pushed now, 3 (naming the members behind) when not:\n" +
			"step 2 (the new key) needs every member trusting the new CA, step 3 (dropping the old CA) every\n" +
			"member trusting it and holding its certificates. Put it in front of the push in your tooling.",
		Args: noArgs,
	}
	rf := addRotationFlags(c.Flags())
	step := c.Flags().Int("step", 0, "the step to push: 1 (bundle), 2 (new key) or 3 (drop the old CA)")
	out := addOutputFlag(c.Flags())
	c.RunE = func(c *cobra.Command, _ []string) error {
		if *step < rollout.StepBundle || *step > rollout.StepDropOld {
			return usageErrorf("--step %d: use 1 (bundle), 2 (new key) or 3 (drop the old CA)", *step)
		}
		r, err := rf.rotation(c.Context(), e)
		if err != nil {
			return err
		}
		if err := r.Allows(*step); err != nil {
			return &exitError{code: exitUnhealthy, err: err}
		}
		if *out != formatTable {
			return printDoc(e.stdout, *out, allowedStep{Step: *step, Push: rotationSteps[*step]})
		}
		fmt.Fprintf(e.stdout, "step %d may be pushed: %s\n", *step, rotationSteps[*step])
		return nil
	}
	return c
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
