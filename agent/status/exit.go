package status

import "github.com/etcd-agent/etcd-agent/agent/problem"

// ExitUnhealthy is the exit code of `status` when anything is wrong
// (the CLI's exitUnhealthy).
const ExitUnhealthy = 3

// ExitCode is 0 when nothing is wrong (every member healthy, a leader, no
// alarm, this node's agent running and healthy, no certificate about to
// expire: no problem of severity warning or worse), ExitUnhealthy otherwise.
func ExitCode(v View) int {
	if v.Summary.Healthy && !problem.Failing(v.Summary.Problems) {
		return 0
	}
	return ExitUnhealthy
}
