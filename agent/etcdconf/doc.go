// Package etcdconf builds the configuration of the local etcd member in one
// place, for both runtimes: Flags renders it as the etcd command line the Podman
// runtime runs in the container, EmbedConfig as the embed.Config the embedded
// runtime starts in-process. Both derive from the same normalized Spec, so the
// two runtimes run etcd with the same meaning.
//
// The member always serves TLS only: client and peer listeners are https, client
// and peer certificate authentication are on, and there is no plaintext
// listener. etcd's corruption checks (the InitialCorruptCheck and
// CompactHashCheck feature gates) are on for every member. Settings the agent
// owns (identity, addresses, TLS, bootstrap) cannot be overridden through
// ExtraFlags, nor can an extra --feature-gates turn the corruption checks off;
// Validate names the offending flag.
package etcdconf
