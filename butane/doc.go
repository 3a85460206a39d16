// Package butane renders the minimal Fedora CoreOS node configuration for an
// etcd-agent cluster from a short cluster spec.
//
// Render turns a Spec into a Butane document, translates it to Ignition in
// process with Butane's own translator and validates the result with
// Ignition's parser; any report entry from either, warnings included, is an
// error (Butane has no strict switch). The node config only drops the agent:
// the unprivileged user with its SSH keys, linger and the user's Podman
// socket, /etc/etcd-agent/{config.yaml,ca.crt,ca.key}, the agent binary
// fetched from a URL with a sha512 verification hash, and etcd-agent.service.
// SELinux is left alone (enforcing).
//
// EC2 user data is limited to 16 KiB and Ignition's AWS provider does not
// gunzip it. The full config also carries the CA key, which must not sit in
// user data: any process on the instance that can reach IMDS can read it. So
// by default Render produces a pointer config as user data: a small Ignition
// config that merges the full one from an S3 or HTTPS URL, pinned by its
// sha512, and returns the full config as an Upload for that URL.
package butane
