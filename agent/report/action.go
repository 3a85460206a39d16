package report

// Action names a decision the agent took. The values are what status shows
// and what etcd_agent_decisions_total counts by; every action the agent can
// take is declared here.
type Action string

// Membership paths (membership.Path) are actions too: bootstrap, join,
// restart.
const (
	ActionBootstrap Action = "bootstrap"
	ActionJoin      Action = "join"
	ActionRestart   Action = "restart"

	// Membership changes (counted by etcd_agent_membership_changes_total).
	ActionAddLearner   Action = "add-learner"
	ActionPromote      Action = "promote"
	ActionRemoveMember Action = "remove-member"

	// ActionFence: the formation fence sent a founder without data to join.
	ActionFence Action = "fence"
	// ActionMoveAside: data that cannot be used was moved aside (kept).
	ActionMoveAside Action = "move-aside"
	// ActionDivergence: replicas diverged, or this member serves a
	// replaced cluster.
	ActionDivergence Action = "divergence"
	// ActionRuntime: the etcd runtime reported something unexpected.
	ActionRuntime Action = "runtime"

	// Rolling changes of etcd's image or settings, and CA restarts.
	ActionChangeRefused   Action = "refused"
	ActionChangeRestart   Action = "etcd-change-restart"
	ActionChangeRestarted Action = "etcd-change-restarted"
	ActionRollback        Action = "rollback"
	ActionRolledBack      Action = "rolled back"
	ActionCARestart       Action = "ca-restart"
	ActionCARestarted     Action = "ca-restarted"

	// Maintenance.
	ActionCompact      Action = "compact"
	ActionDefrag       Action = "defrag"
	ActionDefragmented Action = "defragmented"
	ActionDisarm       Action = "disarm"
	ActionNoSpace      Action = "nospace"
	// ActionTakeLead: under NOSPACE the leader's agent did not act, so this
	// agent moved leadership to its own member to recover.
	ActionTakeLead Action = "take-lead"

	// Snapshots.
	ActionSnapshotFailed       Action = "snapshot-failed"
	ActionSnapshotVerifyFailed Action = "snapshot-verify-failed"

	// ActionDNSRecords: the client DNS records were brought in step with
	// the membership (or withdrawn by `leave`).
	ActionDNSRecords Action = "dns-records"
	// Coordinated OS reboots (FleetLock).
	ActionRebootGranted  Action = "reboot-granted"
	ActionRebootReleased Action = "reboot-released"
	// ActionRebootSlotFreed: a gone holder's slot was freed (by its
	// agent's job, or by hand).
	ActionRebootSlotFreed Action = "reboot-slot-freed"

	// Disaster recovery.
	ActionRecover        Action = "recover"
	ActionRecovered      Action = "recovered"
	ActionRecoverRefused Action = "recover-refused"
	ActionRecoverFailed  Action = "recover-failed"
)

// MembershipChanges are the actions that change the member list.
func MembershipChanges() []Action {
	return []Action{ActionAddLearner, ActionPromote, ActionRemoveMember}
}
