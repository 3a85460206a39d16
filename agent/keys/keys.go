// Package keys declares every key the agents keep in the etcd cluster they
// run, so the whole layout is visible in one screen (like etcd's own
// server/storage/schema). Everything lives under Root; plain etcd clients and
// other tools can ignore it, and `etcdctl get --prefix /_etcd-agent/` shows it.
//
// The discovery registry's keys (the etcd v3 discovery layout, formation and
// recovery records) are another cluster's and live in package discovery.
package keys

import "strconv"

// Root prefixes every key the agents write.
const Root = "/_etcd-agent/"

// Coordination.
const (
	// MembershipLock is the etcd mutex every membership change, rolling
	// restart and defragmentation holds (a concurrency.Mutex prefix: the
	// holders' keys are below it).
	MembershipLock = Root + "lock/membership"
	// HeartbeatPrefix + member ID (hex) holds the time (RFC 3339) its agent
	// last saw its member healthy.
	HeartbeatPrefix = Root + "heartbeat/"
	// HandoverPrefix + member ID (hex) is a seat offered by a voter that
	// EC2 is terminating (agent/fleet): a standby joins beyond the cluster's
	// size to take it before that voter leaves. The key lives on its
	// agent's lease, so a dead offerer's seat goes with it.
	HandoverPrefix = Root + "handover/"
)

// Heartbeat is the heartbeat key of member id.
func Heartbeat(id uint64) string { return HeartbeatPrefix + strconv.FormatUint(id, 16) }

// Handover is the seat-offer key of member id.
func Handover(id uint64) string { return HandoverPrefix + strconv.FormatUint(id, 16) }

// Maintenance and rolling changes.
const (
	// LastDefrag holds the cluster's most recent defragmentation (JSON
	// report.Defrag): pacing survives a change of coordinator.
	LastDefrag = Root + "maintenance/last-defrag"
	// ChangeFailedPrefix + change ID (rollout.ChangeID) holds why an etcd
	// change failed on a member: the others do not try it. Deleting the
	// key lets the change be tried again.
	ChangeFailedPrefix = Root + "change-failed/"
)

// ChangeFailed is the failure record of the change with ID id.
func ChangeFailed(id string) string { return ChangeFailedPrefix + id }

// CA rotation.
const (
	// CAStatePrefix + member name holds what that member runs with (JSON
	// rollout.CAState: the CAs its etcd trusts, the CA that issued its
	// certificates), which `etcd-agent ca rotate` reads.
	CAStatePrefix = Root + "ca/members/"
)

// CAState is the CA state key of the member named name.
func CAState(name string) string { return CAStatePrefix + name }

// Backups.
const (
	// BackupPrefix holds the snapshot schedule.
	BackupPrefix = Root + "backup/"
	// BackupClaim is claimed (put-if-absent, on a lease) by the agent that
	// takes this interval's snapshot.
	BackupClaim = BackupPrefix + "claim"
	// BackupRecord is the shared outcome of the snapshots (JSON
	// report.Backup).
	BackupRecord = BackupPrefix + "record"
)

// Coordinated OS reboots (FleetLock, package fleetlock).
const (
	// FleetLockPrefix + group + "/" + slot number holds the slot's holder
	// (JSON fleetlock.Holder): a group of n slots has keys 0..n-1, each
	// taken by a put-if-absent and freed by a delete-if-unchanged, both
	// transactions.
	FleetLockPrefix = Root + "fleetlock/"
)

// FleetLockSlot is slot number slot of group.
func FleetLockSlot(group string, slot int) string {
	return FleetLockPrefix + group + "/" + strconv.Itoa(slot)
}

// Recovery.
const (
	// Recovery holds, inside a recovered cluster, the record of the
	// recovery that made it (JSON discovery.Recovery): old members that
	// reach it learn that their cluster was replaced.
	Recovery = Root + "recovery"
	// QuorumProbe is read linearizably to tell whether a quorum serves; it
	// is never written.
	QuorumProbe = Root + "quorum-probe"
)

// Client DNS records.
const (
	// DNSRecords holds the outcome of the leader's agent's latest round of
	// the client DNS records (JSON dnsrecords.Shared), so every node's
	// status shows a Route 53 refusal, not only the writer's.
	DNSRecords = Root + "dns/records"
)
