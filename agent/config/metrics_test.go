package config

import (
	"errors"
	"strings"
	"testing"
)

func TestMetricsSection(t *testing.T) {
	cfg, warnings, err := load(t, minimal, nil, nil)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("minimal config: %v, warnings %v", err, warnings)
	}
	if cfg.Metrics.Enabled || cfg.Metrics.Address != DefaultMetricsAddress {
		t.Errorf("metrics = %+v, want off at %s by default", cfg.Metrics, DefaultMetricsAddress)
	}

	cfg, warnings, err = load(t, minimal+"metrics:\n  enabled: true\n  address: \"[::1]:9100\"\n", nil, nil)
	if err != nil || len(warnings) != 0 || !cfg.Metrics.Enabled || cfg.Metrics.Address != "[::1]:9100" {
		t.Errorf("loopback IPv6: %+v, %v, warnings %v", cfg.Metrics, err, warnings)
	}

	warned := map[string]string{
		"metrics:\n  enabled: true\n  address: 0.0.0.0:2382\n": "plain HTTP without authentication",
		"metrics:\n  address: 127.0.0.1:9100\n":                "metrics.enabled is false",
	}
	for yaml, want := range warned {
		_, warnings, err := load(t, minimal+yaml, nil, nil)
		if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], want) {
			t.Errorf("%q: err %v, warnings %q; want one mentioning %q", yaml, err, warnings, want)
		}
	}

	bad := map[string]string{
		"metrics:\n  enabled: true\n  address: 2382\n":               "is not host:port",
		"metrics:\n  enabled: true\n  address: 127.0.0.1:99999\n":    "has no valid TCP port",
		"metrics:\n  enabled: true\n  address: 127.0.0.1:2379\n":     "uses etcd's client or peer port",
		"metrics:\n  enabled: true\n  address: metrics.local:2382\n": "host is not an IP address or localhost",
	}
	for yaml, want := range bad {
		_, _, err := load(t, minimal+yaml, nil, nil)
		var cerr *Error
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &cerr) || cerr.Problems[0].Field != "metrics.address" {
			t.Errorf("%q: err %v, want a metrics.address problem mentioning %q", yaml, err, want)
		}
	}
	// YAML mistakes name their line, as for every section.
	for yaml, want := range map[string]string{
		"metrics:\n  enabled: yes-please\n":                     "metrics.enabled (line 7): want true or false, got \"yes-please\"",
		"metrics:\n  enabled: true\n  listen: 127.0.0.1:2382\n": "metrics.listen (line 8): unknown key; metrics takes enabled, address",
	} {
		if _, _, err := load(t, minimal+yaml, nil, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want it to mention %q", yaml, err, want)
		}
	}
}
