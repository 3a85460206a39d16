package status

// ExitUnhealthy is the exit code of `status` when anything is wrong
// (the CLI's exitUnhealthy).
const ExitUnhealthy = 3

// ExitCode is 0 when nothing is wrong (every member healthy, a leader, no
// alarm, this node's agent running and healthy, no certificate about to
// expire: Summary.Problems is empty), ExitUnhealthy otherwise.
func ExitCode(v View) int {
	if v.Summary.Healthy && len(v.Summary.Problems) == 0 {
		return 0
	}
	return ExitUnhealthy
}
