package config

import "strings"

// Problem is one invalid setting: which field, what value, what is wrong
// and how to fix it.
type Problem struct {
	Field   string
	Value   string
	Problem string
	Fix     string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Field)
	if p.Value != "" {
		b.WriteString(" = " + quote(p.Value))
	}
	b.WriteString(": " + p.Problem)
	if p.Fix != "" {
		b.WriteString(" (fix: " + p.Fix + ")")
	}
	return b.String()
}

func quote(s string) string { return "\"" + s + "\"" }

// Error is a configuration error. It lists every problem found, not just the
// first, so one edit fixes them all. Exit with ExitCode on it.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "invalid configuration: " + e.Problems[0].String()
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "  - " + p.String()
	}
	return "invalid configuration:\n" + strings.Join(lines, "\n")
}
