package config

import (
	"fmt"
	"strings"
)

// Problem is one invalid setting: which field, where it is set, what value,
// what is wrong and how to fix it.
type Problem struct {
	// Field is the YAML path ("cluster.size", "etcd.extraFlags[1]"), or
	// what else is wrong ("--config"); empty for the file's syntax.
	Field string
	// Line is where the file sets Field (0: not in the file).
	Line int
	// From names the override that set Field instead of the file
	// ("ETCD_AGENT_NODE_IP", "the command line"); empty for the file.
	From    string
	Value   string
	Problem string
	Fix     string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Field)
	switch {
	case p.Line > 0 && p.Field == "":
		fmt.Fprintf(&b, "line %d", p.Line)
	case p.Line > 0:
		fmt.Fprintf(&b, " (line %d)", p.Line)
	case p.From != "":
		b.WriteString(" (from " + p.From + ")")
	}
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
	// File is the configuration file the problems are in, if any.
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	head := "invalid configuration"
	if e.File != "" {
		head += " in " + e.File
	}
	if len(e.Problems) == 1 {
		return head + ": " + e.Problems[0].String()
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "  - " + p.String()
	}
	return fmt.Sprintf("%s (%d problems):\n%s", head, len(e.Problems), strings.Join(lines, "\n"))
}
