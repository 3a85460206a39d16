// Package discovery finds the founding members of a new etcd cluster for a
// node that has no data yet.
//
// Three sources implement [Source]:
//
//   - [V3] uses etcd's own v3 discovery layout on a discovery etcd cluster
//     (/_etcd/registry/<token>/...). Its registrations are the ones a plain
//     etcd started with --discovery-token/--discovery-endpoints writes and
//     reads, so agents and plain etcd members can bootstrap together.
//   - [V2] speaks the v2 keys protocol of a v2 discovery URL itself (etcd
//     3.7 removed v2 discovery from the server).
//   - [Static] is a fixed peer list.
//
// [NewToken], [ShowToken] and [Serve] back the `etcd-agent discovery`
// subcommands. The decisions (who won a registry, conflicts) are pure
// functions in registry.go; the network code around them only gathers facts
// and retries with capped, jittered backoff.
package discovery
