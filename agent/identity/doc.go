// Package identity tells the agent who this node is: the etcd member name,
// the private address peers and clients use, and the EC2 facts (instance id,
// availability zone, region, hostname) that certificates, membership decisions
// and status output are built from.
//
// Two sources implement [Source]: [IMDS] reads EC2 instance metadata over
// IMDSv2 only (a session token is always required; there is no IMDSv1
// fallback), and [Static] is a fixed identity for local clusters and tests.
package identity
