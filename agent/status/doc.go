// Package status builds what `etcd-agent status` shows: this node's agent
// state (from the report the agent publishes), the cluster's member list,
// and per-endpoint status and health, gathered with the operator's client
// certificate from every member in parallel.
//
// Gather does the I/O and never fails as a whole: an endpoint that does not
// answer becomes a row with an Error. The View it returns is the one value
// both printers render (Render "table" and "json"), and ExitCode turns it
// into the command's exit status.
package status
