package lintest

// Failed is how many puts failed or timed out so far (ambiguous: each may or
// may not have taken effect). A scenario that must not disturb writers
// asserts it stays 0.
func (w *Writer) Failed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.unknown)
}

// Errors are the first put errors (when, after how long, what), for the
// log of a scenario whose writes must not fail.
func (w *Writer) Errors() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errs...)
}

// raftProposalDropped is how etcd reports a proposal its raft dropped
// before appending it to the log (raft.ErrProposalDropped), e.g. one that
// reached the leader while it transferred leadership.
const raftProposalDropped = "raft proposal dropped"

// Dropped is how many of the failed puts etcd reported as dropped by raft
// before they entered the log: refused, safe for a client to retry. The
// history still treats them as ambiguous (the conservative reading).
func (w *Writer) Dropped() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped
}
