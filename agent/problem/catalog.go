package problem

import "time"

// The kinds of problem the agent and `status` detect today. To add one:
// declare it here (or in the package that detects it), add it to Known, and
// make occurrences with Kind.New/Newf. Codes are stable once released.
var (
	// The cluster, as `etcd-agent status` sees it.

	ClusterUnreachable = Kind{Code: "cluster-unreachable", Severity: Critical, Title: "no member answers",
		Fix: "check that etcd runs on the members (systemctl status etcd-agent) and that this node reaches their client port"}
	NoMemberList = Kind{Code: "member-list-unavailable", Severity: Warning, Title: "no member list",
		Fix: "the members that answered could not list the members: see each endpoint's error"}
	NoLeader = Kind{Code: "no-leader", Severity: Critical, Title: "no leader",
		Fix: "a majority of voters must answer for a leader to be elected: bring the members that do not answer back"}
	MemberUnhealthy = Kind{Code: "member-unhealthy", Severity: Warning, Title: "member not healthy",
		Fix: "check the member's node (etcd-agent status there, journalctl -u etcd-agent)"}
	MemberLearner = Kind{Code: "member-learner", Severity: Warning, Title: "learner catching up",
		Fix: "nothing to do: the joining node's agent promotes it once it caught up"}
	MemberUnstarted = Kind{Code: "member-unstarted", Severity: Warning, Title: "member added, not started",
		Fix: "the joining node's agent starts it; if that node is gone, its agent or a replacement removes it"}
	AlarmNoSpace = Kind{Code: "alarm-nospace", Severity: Critical, Title: "database space exceeded (NOSPACE)",
		Fix: "the agents compact, defragment and disarm by themselves once the data fits under the quota; " +
			"if the leader's agent reports that it does not (nospace-kept), delete keys you no longer need or raise etcd.quotaBackendBytes"}
	NoSpaceKept = Kind{Code: "nospace-kept", Severity: Critical, Title: "NOSPACE alarm kept: the live data does not fit",
		Fix: "delete keys you no longer need (freed once older than etcd.autoCompactionRetention), or raise etcd.quotaBackendBytes (it rolls out one node at a time)"}
	AlarmCorrupt = Kind{Code: "alarm-corrupt", Severity: Critical, Title: "data corruption detected (CORRUPT)",
		Fix: "find the member whose HashKV differs (HASHKV column), stop its agent, move its data dir aside so it rejoins as a new member, " +
			"then disarm the alarm (etcdctl alarm disarm)"}
	AlarmOther = Kind{Code: "alarm-other", Severity: Critical, Title: "etcd alarm raised",
		Fix: "see etcd's documentation for this alarm"}
	AlarmsUnknown = Kind{Code: "alarms-unknown", Severity: Warning, Title: "alarms not listed",
		Fix: "no member answered the alarm list: see the endpoints' errors"}
	UnderReplicated = Kind{Code: "under-replicated", Severity: Warning, Title: "fewer voters than cluster.size",
		Fix: "the agents replace a failed member by themselves (a new node joins once the dead one's grace ends): check that the Auto Scaling group runs cluster.size nodes and that the missing node's agent runs (etcd-agent status there)"}
	HashMismatch = Kind{Code: "hashkv-mismatch", Severity: Critical, Title: "replicas diverged",
		Fix: "the member whose HashKV differs from the majority holds other data: stop its agent and move its data dir aside so it rejoins as a new member"}

	// Backups (the agents' shared snapshot record).

	SnapshotStale = Kind{Code: "snapshot-stale", Severity: Warning, Title: "no recent snapshot",
		Fix: "check the agents' logs (journalctl -u etcd-agent) for the snapshot job; etcd-agent snapshot save takes one now"}
	SnapshotFailed = Kind{Code: "snapshot-failed", Severity: Warning, Title: "snapshot attempt failed",
		Fix: "the message names the cause (bucket, credentials, disk); fix it and the next interval retries, or run etcd-agent snapshot save"}
	BackupsSingleNode = Kind{Code: "backups-single-node", Severity: Warning, Title: "snapshots on one node's disk only",
		Fix: "configure backup.s3 (every node, the instance role may write the bucket): a snapshot kept only in backup.dir is lost with that node's volume, which is when it is needed"}
	SnapshotUnverified = Kind{Code: "snapshot-unverified", Severity: Critical, Title: "snapshot failed verification",
		Fix: "the newest snapshot does not restore as recorded: take a new one (etcd-agent snapshot save) and check the store (etcd-agent snapshot verify latest)"}

	// This node's agent.

	AgentNeverRan = Kind{Code: "agent-never-ran", Severity: Critical, Title: "agent never ran on this node",
		Fix: "start it (systemctl start etcd-agent, then journalctl -u etcd-agent), or pass --config of the agent that runs here (its pki.dir and agent.statusFile)"}
	AgentNotRunning = Kind{Code: "agent-not-running", Severity: Warning, Title: "agent not running",
		Fix: "systemctl status etcd-agent; journalctl -u etcd-agent"}
	AgentNotHealthy = Kind{Code: "agent-not-healthy", Severity: Warning, Title: "agent not healthy",
		Fix: "see the agent's message and journalctl -u etcd-agent"}
	LocalMemberUnhealthy = Kind{Code: "local-member-unhealthy", Severity: Warning, Title: "local member not healthy",
		Fix: "the agent restarts etcd with backoff when it exits; see journalctl -u etcd-agent"}
	CertExpired = Kind{Code: "cert-expired", Severity: Critical, Title: "certificate expired",
		Fix: "renewal is failing: check the agent log (journalctl -u etcd-agent) and the CA files"}
	CertExpiring = Kind{Code: "cert-expiring", Severity: Warning, Title: "certificate expires soon",
		Fix: "renewal is failing: check the agent log (journalctl -u etcd-agent) and the CA files"}
	EtcdChangeRolling = Kind{Code: "etcd-change-rolling", Severity: Info, Title: "etcd config change rolling out",
		Fix: "nothing to do: the agents restart one member at a time, each once every other voter is healthy"}
	EtcdChangeRefused = Kind{Code: "etcd-change-refused", Severity: Warning, Title: "etcd config change refused",
		Fix: "etcd upgrades one minor version at a time, and downgrades only through its downgrade procedure: correct etcd.image in the node's config (see the reason)"}
	EtcdChangeFailed = Kind{Code: "etcd-change-failed", Severity: Warning, Title: "etcd config change failed",
		Fix: "the member was not healthy with the change and was rolled back: correct the config (another image or setting is a new change), " +
			"or delete /_etcd-agent/change-failed/ to try the same one again"}
	// Client DNS records (agent/dnsrecords), reported by the agent that
	// writes them: the leader's, or `leave`.

	DNSZoneMissing = Kind{Code: "dns-zone-missing", Severity: Warning, Title: "Route 53 hosted zone not found",
		Fix: "clients.route53.hostedZoneID names no zone these credentials see: copy the ID from `aws route53 list-hosted-zones` (same AWS account as the instances)"}
	DNSAccessDenied = Kind{Code: "dns-access-denied", Severity: Warning, Title: "Route 53 refused the agent's credentials",
		Fix: "allow route53:ListResourceRecordSets and route53:ChangeResourceRecordSets on the zone to the instance role (docs/deploy-aws.md, IAM policy)"}
	DNSChangeRefused = Kind{Code: "dns-change-refused", Severity: Warning, Title: "Route 53 refused the client record change",
		Fix: "the message names the record: clients.route53.domain must lie inside the hosted zone, and no record of another type (a CNAME) may hold the names _etcd-client-ssl._tcp.<domain> or <member>.<domain>"}
	DNSRecordsFailed = Kind{Code: "dns-records-failed", Severity: Warning, Title: "client DNS records not updated",
		Fix: "the message names the cause (credentials, network, endpoint): fix it and the leader's agent retries on its next round"}
	MetricsUnavailable = Kind{Code: "metrics-unavailable", Severity: Warning, Title: "metrics endpoint not serving",
		Fix: "free the port or change metrics.address; the agent keeps retrying"}

	// EC2 churn (agent/fleet): notices in IMDS, Auto Scaling lifecycle hooks.

	InstanceLeaving = Kind{Code: "instance-leaving", Severity: Info, Title: "EC2 is taking this instance away: leaving the cluster",
		Fix: "nothing to do: the agent hands leadership over, takes a snapshot and removes its member while the others keep a quorum"}
	InstanceStays = Kind{Code: "instance-leave-held", Severity: Critical, Title: "EC2 is taking this instance away, but its member stays",
		Fix: "removing it now would break the cluster's quorum: bring the other members back (their nodes' etcd-agent status); " +
			"the agent leaves as soon as it may, and if the instance goes first the member is dead until deadMemberGrace lets a replacement remove it"}
	MaintenanceScheduled = Kind{Code: "ec2-maintenance-scheduled", Severity: Info, Title: "EC2 scheduled maintenance event",
		Fix: "EC2 will reboot, stop or retire this instance in the window shown; the cluster tolerates it while the other members are healthy " +
			"(or replace the instance ahead of it: terminate it and let the group launch another)"}
	NoticesUnreadable = Kind{Code: "imds-notices-unreadable", Severity: Warning, Title: "EC2 notices cannot be read from IMDS",
		VisibleAfter: 30 * time.Second,
		Fix:          "the agent retries with backoff; check that IMDSv2 answers on the instance (HttpEndpoint=enabled, HttpTokens=required, hop limit >= 1) and fleet.imdsEndpoint"}
	LifecycleStateMissing = Kind{Code: "asg-lifecycle-state-missing", Severity: Warning, Title: "IMDS has no Auto Scaling lifecycle state",
		Fix: "fleet.autoScaling.terminateHook is set, but IMDS has no autoscaling/target-lifecycle-state: the instance is not in an Auto Scaling group " +
			"(check fleet.autoScaling.group); the terminate hook cannot be seen, so the member leaves only on spot and rebalance notices " +
			"and is otherwise removed as dead after deadMemberGrace"}
	LifecycleHookFailed = Kind{Code: "asg-lifecycle-hook-failed", Severity: Warning, Title: "Auto Scaling lifecycle hook call failed",
		Fix: "see the message: the group completes the hook with its default result after its heartbeat timeout; the member leaves safely meanwhile"}
	SeatOfferFailed = Kind{Code: "asg-seat-offer-failed", Severity: Warning, Title: "cannot offer this member's seat to a replacement",
		Fix: "the agent retries each round; once fleet.autoScaling.replacementWait has run out the member leaves without a replacement (quorum permitting)"}
	LifecycleHookWaiting = Kind{Code: "asg-launch-hook-waiting", Severity: Info, Title: "launch hook held until the member is ready",
		Fix: "nothing to do: the agent completes the launch hook with CONTINUE once its member is a healthy, caught-up voter, and heartbeats it meanwhile"}

	FleetLockUnavailable = Kind{Code: "fleetlock-unavailable", Severity: Warning, Title: "FleetLock endpoint not serving: Zincati cannot get a reboot slot",
		Fix: "free the port or change fleetLock.address (and Zincati's base_url with it); the agent keeps retrying"}
)

// Known lists every kind declared above, so metrics can show each code at
// zero before it first happens. Problems of kinds not listed still show.
func Known() []Kind {
	return []Kind{
		ClusterUnreachable, NoMemberList, NoLeader, MemberUnhealthy, MemberLearner, MemberUnstarted,
		AlarmNoSpace, NoSpaceKept, AlarmCorrupt, AlarmOther, AlarmsUnknown, UnderReplicated, HashMismatch,
		SnapshotStale, SnapshotFailed, SnapshotUnverified, BackupsSingleNode,
		AgentNeverRan, AgentNotRunning, AgentNotHealthy, LocalMemberUnhealthy, CertExpired, CertExpiring, MetricsUnavailable, FleetLockUnavailable,
		EtcdChangeRolling, EtcdChangeRefused, EtcdChangeFailed,
		DNSZoneMissing, DNSAccessDenied, DNSChangeRefused, DNSRecordsFailed,
		InstanceLeaving, InstanceStays, MaintenanceScheduled, NoticesUnreadable, LifecycleStateMissing, LifecycleHookFailed, LifecycleHookWaiting,
		SeatOfferFailed,
	}
}
