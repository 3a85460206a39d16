package butane

import (
	"errors"
	"fmt"
	"time"

	"github.com/etcd-agent/etcd-agent/systemd"
)

// Options are the renderer's inputs besides the spec.
type Options struct {
	// DefaultImageTag is the etcd version this binary was built with
	// ("v3.7.3"); it tags the default etcd image. Required.
	DefaultImageTag string
	// Now is when the CA must be valid. Zero: time.Now().
	Now time.Time
}

// Result is a rendered node config.
type Result struct {
	// Butane is the full node config as Butane YAML (node.bu). It contains
	// the CA key.
	Butane []byte
	// Ignition is Butane translated and validated (node.ign, or full.ign
	// when Pointer). It contains the CA key.
	Ignition []byte
	// UserData is what goes into EC2 user data: Ignition itself, or the
	// pointer config when Pointer.
	UserData []byte
	// Pointer says UserData merges Ignition from the spec's pointer.url.
	Pointer bool
	// Uploads must be in place before nodes boot (the full config when
	// Pointer).
	Uploads []Upload
	// Notes are instructions and warnings for the operator, in order.
	Notes []string
}

// Upload is a file the operator must publish at a URL.
type Upload struct {
	// Name is the suggested local file name ("full.ign").
	Name string
	// Dest is the URL the nodes fetch it from.
	Dest string
	// Contents are the exact bytes; SHA512 is their hex digest, which the
	// user data pins.
	Contents []byte
	SHA512   string
}

// FullConfigName is the file name of the uploaded full config.
const FullConfigName = "full.ign"

// Render validates spec, reads the CA and key files it names, renders the
// node's Butane config, translates and validates it, and decides what goes
// into user data. Spec problems are returned together as a *config.Error.
func Render(spec Spec, opts Options) (Result, error) {
	if opts.DefaultImageTag == "" {
		return Result{}, errors.New("render node config: Options.DefaultImageTag is empty")
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	s := spec.withDefaults(opts.DefaultImageTag)
	var ps problems
	s.validate(&ps)
	in := s.readInputs(&ps, now)
	agentCfg, err := agentConfig(s)
	if err != nil {
		return Result{}, fmt.Errorf("render node config: %w", err)
	}
	if err := checkAgentConfig(&ps, agentCfg, opts.DefaultImageTag); err != nil {
		return Result{}, fmt.Errorf("render node config: %w", err)
	}
	if err := ps.err(); err != nil {
		return Result{}, err
	}
	unit, err := systemd.UnitFile(systemd.UnitOptions{User: s.User})
	if err != nil {
		return Result{}, fmt.Errorf("render node config: %w", err)
	}
	startUnit, err := systemd.StartUnitFile()
	if err != nil {
		return Result{}, fmt.Errorf("render node config: %w", err)
	}
	header := fmt.Sprintf("# Fedora CoreOS node config for etcd cluster %q, rendered by `etcd-agent butane`.\n"+
		"# It contains the CA private key: keep it private.\n", s.Cluster.Name)
	bu, err := nodeConfig(nodeParts{spec: s, in: in, agentConfig: agentCfg, unit: unit, startUnit: startUnit}).marshal(header)
	if err != nil {
		return Result{}, fmt.Errorf("render node config: %w", err)
	}
	ign, err := translate(bu, s.Version)
	if err != nil {
		return Result{}, fmt.Errorf("render node config: %w", err)
	}
	res := Result{Butane: bu, Ignition: ign, UserData: ign}
	if res, err = res.withUserData(s, len(in.caKey) > 0); err != nil {
		return Result{}, err
	}
	sources := []string{s.Agent.URL}
	if res.Pointer {
		sources = append(sources, s.Pointer.URL)
	}
	if n := iamNote(sources...); n != "" {
		res.Notes = append(res.Notes, n)
	}
	return res, nil
}

// withUserData replaces UserData with a pointer config when the full config
// must not or cannot be user data, or when the spec asks for one.
func (r Result) withUserData(s Spec, carriesKey bool) (Result, error) {
	why := pointerReasons(len(r.Ignition), carriesKey, s.CA.AllowKeyInUserData)
	if len(why) == 0 && s.Pointer.URL == "" {
		if carriesKey {
			r.Notes = append(r.Notes, "user data contains the CA key (ca.allowKeyInUserData): any process on the instance that can reach IMDS can read it; set pointer.url to keep it out")
		}
		return r, nil
	}
	if s.Pointer.URL == "" {
		var ps problems
		for _, w := range why {
			ps.add("pointer.url", "", "is required: "+w,
				"set pointer.url to s3://bucket/key (or an https:// URL) where the full config will be uploaded; user data then only points at it")
		}
		return Result{}, ps.err()
	}
	hash := sha512Hex(r.Ignition)
	header := "# EC2 user data: merges the full node config, pinned by its sha512.\n"
	bu, err := pointerConfig(s.Variant, s.Version, s.Pointer.URL, hash).marshal(header)
	if err != nil {
		return Result{}, fmt.Errorf("render pointer config: %w", err)
	}
	ud, err := translate(bu, s.Version)
	if err != nil {
		return Result{}, fmt.Errorf("render pointer config: %w", err)
	}
	if len(ud) > UserDataLimit {
		return Result{}, fmt.Errorf("render pointer config: %d bytes is over EC2's %d-byte user-data limit", len(ud), UserDataLimit)
	}
	r.UserData = ud
	r.Pointer = true
	r.Uploads = []Upload{{Name: FullConfigName, Dest: s.Pointer.URL, Contents: r.Ignition, SHA512: hash}}
	r.Notes = append(r.Notes, uploadNotes(FullConfigName, s.Pointer.URL)...)
	return r, nil
}
