package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// docLinkPending are link targets another branch creates; while one is
// missing its links are not checked (once it exists they are, like any).
var docLinkPending = map[string]string{
	"docs/cli": "the command reference generated from the command tree (branch cli)",
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile("^#{1,6} +(.+?) *#*$")
)

// TestDocLinks: every relative link in README.md and docs/*.md points at
// a file that exists and, with a #fragment, at a heading GitHub makes that
// anchor of, so moving a section never leaves a dead link behind.
func TestDocLinks(t *testing.T) {
	root := filepath.Join("..", "..")
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	anchors := map[string]map[string]bool{} // by cleaned path
	anchorsOf := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		a := map[string]bool{}
		anchors[path] = a
		b, err := os.ReadFile(path)
		if err != nil {
			return a
		}
		seen := map[string]int{}
		for _, line := range proseLines(string(b)) {
			m := mdHeading.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			slug := githubSlug(m[1])
			if n := seen[slug]; n > 0 {
				a[slug+"-"+strconv.Itoa(n)] = true
			} else {
				a[slug] = true
			}
			seen[slug]++
		}
		return a
	}
	links := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range proseLines(string(b)) {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				links++
				file, frag, _ := strings.Cut(target, "#")
				path := filepath.Clean(filepath.Join(filepath.Dir(f), file))
				if file == "" {
					path = filepath.Clean(f)
				}
				rel, _ := filepath.Rel(root, path)
				if _, err := os.Stat(path); err != nil {
					if _, pending := docLinkPending[filepath.ToSlash(rel)]; pending {
						continue
					}
					t.Errorf("%s:%d: link %q: %s does not exist", f, i+1, target, rel)
					continue
				}
				if frag != "" && strings.HasSuffix(path, ".md") && !anchorsOf(path)[frag] {
					t.Errorf("%s:%d: link %q: %s has no heading with the anchor #%s", f, i+1, target, rel, frag)
				}
			}
		}
	}
	if links < 50 {
		t.Errorf("found %d relative links in README.md and docs/; the parser misses some", links)
	}
}

// proseLines is the document's lines with fenced code blocks blanked (a
// `#` comment there is no heading, a `](x)` no link), so indexes stay line
// numbers.
func proseLines(doc string) []string {
	lines := strings.Split(doc, "\n")
	fenced := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			fenced = !fenced
			lines[i] = ""
			continue
		}
		if fenced {
			lines[i] = ""
		}
	}
	return lines
}

// githubSlug is the anchor GitHub gives a heading: lower case, markup and
// punctuation dropped, each space a hyphen.
func githubSlug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestGithubSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Coordinated OS reboots (FleetLock)":             "coordinated-os-reboots-fleetlock",
		"10. Clients: DNS SRV or a load balancer":        "10-clients-dns-srv-or-a-load-balancer",
		"Why `pointer.url` is (almost always) needed":    "why-pointerurl-is-almost-always-needed",
		"EC2 churn: spot, rebalance, Auto Scaling hooks": "ec2-churn-spot-rebalance-auto-scaling-hooks",
		"asg-lifecycle-state-missing":                    "asg-lifecycle-state-missing",
	} {
		if got := githubSlug(heading); got != want {
			t.Errorf("githubSlug(%q) = %q, want %q", heading, got, want)
		}
	}
}
