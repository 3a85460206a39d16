package problem

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunbookCoversEveryCode: docs/runbook.md has a section for every
// known code (alerts and status link to it by code), and no section for a
// code that does not exist.
func TestRunbookCoversEveryCode(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if code, ok := strings.CutPrefix(line, "### "); ok {
			sections[code] = true
		}
	}
	known := map[string]bool{}
	for _, k := range Known() {
		known[string(k.Code)] = true
		if !sections[string(k.Code)] {
			t.Errorf("docs/runbook.md has no section \"### %s\" (%s)", k.Code, k.Title)
		}
		if want := "docs/runbook.md#" + string(k.Code); k.Runbook() != want {
			t.Errorf("%s: Runbook() = %q, want %q", k.Code, k.Runbook(), want)
		}
	}
	for code := range sections {
		if !known[code] {
			t.Errorf("docs/runbook.md has a section for %q, which is not a known code", code)
		}
	}
}
