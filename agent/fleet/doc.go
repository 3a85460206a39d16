// Package fleet is the agent's side of EC2's churn: it watches the
// instance metadata for the notices EC2 gives before an instance goes
// away (the Auto Scaling target lifecycle state Terminated, a spot
// interruption, a rebalance recommendation) and the scheduled maintenance
// events, leaves the cluster the way `etcd-agent leave` does while the
// remaining voters keep a quorum, and completes the group's lifecycle
// hooks: the launch hook once the member is ready, the terminate hook once
// it left, heartbeating both while it waits.
//
// Decide is the pure planner over what IMDS said and a survey of the
// cluster; Job is the job-table row that gathers the facts, acts on the
// plan and publishes the problems `etcd-agent status` shows; Hooks is the
// Auto Scaling API (aws-sdk-go-v2/service/autoscaling).
package fleet
