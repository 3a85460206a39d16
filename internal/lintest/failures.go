package lintest

// Failed is how many puts failed or timed out so far (ambiguous: each may or
// may not have taken effect). A scenario that must not disturb writers
// asserts it stays 0.
func (w *Writer) Failed() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.unknown)
}
