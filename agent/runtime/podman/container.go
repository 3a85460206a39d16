package podman

import (
	"path/filepath"
	"strconv"

	"github.com/containers/podman/v5/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/etcd-agent/etcd-agent/agent/etcdconf"
)

// specHash is the spec hash of the container for s: the etcd flags plus
// everything about the container that only a new container can change.
func (r *Runtime) specHash(s etcdconf.Spec, rootless bool) string {
	return s.Hash(
		"runtime=podman/v1",
		"image="+r.image(s),
		"nofile="+strconv.FormatUint(r.opts.Nofile, 10),
		"nproc="+strconv.FormatUint(r.opts.Nproc, 10),
		"rootless="+strconv.FormatBool(rootless),
	)
}

// image is the image that runs s: its own, else the configured one.
func (r *Runtime) image(s etcdconf.Spec) string {
	if s.Image != "" {
		return s.Image
	}
	return r.opts.Image
}

// containerSpec is the container for s.
func (r *Runtime) containerSpec(s etcdconf.Spec, name, hash string, rootless bool) *specgen.SpecGenerator {
	g := specgen.NewSpecGenerator(r.image(s), false)
	g.Name = name
	g.Command = append([]string{EtcdBinary}, s.Flags()...)
	g.Labels = map[string]string{
		LabelManaged:  "true",
		LabelSpecHash: hash,
		LabelMember:   s.Name,
	}
	g.NetNS = specgen.Namespace{NSMode: specgen.Host}
	if rootless {
		// The container's etcd runs as the agent's user: its files stay the user's.
		g.UserNS = specgen.Namespace{NSMode: specgen.KeepID}
	}
	dataDir, certDir := filepath.Clean(s.DataDir), filepath.Clean(s.CertDir)
	g.Mounts = []spec.Mount{
		{Type: "bind", Source: dataDir, Destination: dataDir, Options: []string{"rbind", "rw", "Z"}},
		{Type: "bind", Source: certDir, Destination: certDir, Options: []string{"rbind", "ro", "Z"}},
	}
	g.Rlimits = []spec.POSIXRlimit{
		{Type: "nofile", Soft: r.opts.Nofile, Hard: r.opts.Nofile},
		{Type: "nproc", Soft: r.opts.Nproc, Hard: r.opts.Nproc},
	}
	stop := uint(r.opts.StopTimeout.Seconds())
	g.StopTimeout = &stop
	noNewPrivs := true
	g.NoNewPrivileges = &noNewPrivs
	g.CapDrop = []string{"ALL"}
	return g
}
