package config

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Marshal renders c as a config file that Load reads back into the same
// Config. Only the keys that are set appear (a zero value means the default,
// so leaving it out changes nothing); durations and sizes are written in the
// file's own units ("90s", "30d", "64MiB"). Whoever writes a node's config
// (`local up`, the test clusters) builds a Config and renders it here rather
// than templating YAML by hand.
func Marshal(c *Config) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b.Bytes(), nil
}

// WriteFile writes Marshal(c) to path (mode 0644), after header: comment
// lines without the leading "# ", one per line; "" for none.
func WriteFile(path, header string, c *Config) error {
	data, err := Marshal(c)
	if err != nil {
		return err
	}
	var b strings.Builder
	if header != "" {
		for _, line := range strings.Split(strings.TrimRight(header, "\n"), "\n") {
			b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
	}
	b.Write(data)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// MarshalYAML implements yaml.Marshaler: whole days as "30d", else Go's
// duration syntax without trailing zero units ("1h", "10m", "1m30s").
func (d Duration) MarshalYAML() (any, error) { return d.text(), nil }

func (d Duration) text() string {
	const day = 24 * time.Hour
	v := time.Duration(d)
	if v > 0 && v%day == 0 {
		return fmt.Sprintf("%dd", v/day)
	}
	s := v.String()
	if t, ok := strings.CutSuffix(s, "m0s"); ok {
		s = t + "m"
	}
	if t, ok := strings.CutSuffix(s, "h0m"); ok {
		s = t + "h"
	}
	return s
}

// MarshalYAML implements yaml.Marshaler: the largest binary unit that
// divides the size ("64MiB", "2GiB"), else a plain byte count.
func (z Size) MarshalYAML() (any, error) {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		u := sizeUnits[i]
		if z > 0 && int64(z)%u.mult == 0 {
			return fmt.Sprintf("%d%s", int64(z)/u.mult, u.suffix), nil
		}
	}
	return int64(z), nil
}
