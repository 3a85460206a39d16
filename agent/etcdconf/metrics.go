package etcdconf

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"go.etcd.io/etcd/server/v3/embed"
)

// metricsURLsFlag is etcd's extra listener for /metrics and /health. The
// agent owns every other listener; this one it allows in ExtraFlags, on
// loopback only, so a local Prometheus agent or node exporter can scrape
// etcd's own metrics without the client certificate the client port needs.
const metricsURLsFlag = "listen-metrics-urls"

// checkMetricsURLs accepts a comma-separated list of http(s) URLs on
// loopback addresses with a port.
func checkMetricsURLs(value string) error {
	if value == "" {
		return fmt.Errorf("extra flag --%s needs a value (--%s=http://127.0.0.1:2381)", metricsURLsFlag, metricsURLsFlag)
	}
	for _, raw := range strings.Split(value, ",") {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Port() == "" || u.Path != "" && u.Path != "/" {
			return fmt.Errorf("extra flag --%s=%s: %q is not a URL like http://127.0.0.1:2381", metricsURLsFlag, value, raw)
		}
		host := u.Hostname()
		ip, err := netip.ParseAddr(host)
		if host != "localhost" && (err != nil || !ip.IsLoopback()) {
			return fmt.Errorf("extra flag --%s=%s: %s is not a loopback address: etcd's metrics listener has no client certificate auth, so etcd-agent allows it on loopback only (e.g. http://127.0.0.1:2381); scrape etcd from elsewhere through the client port with a client certificate", metricsURLsFlag, value, host)
		}
	}
	return nil
}

// applyMetricsURLs sets etcd's metrics listeners (embed reads
// ListenMetricsUrls, not the config-file string).
func applyMetricsURLs(cfg *embed.Config, value string) error {
	if err := checkMetricsURLs(value); err != nil {
		return err
	}
	urls, err := parseURLs(strings.Split(value, ",")...)
	if err != nil {
		return fmt.Errorf("extra flag --%s: %w", metricsURLsFlag, err)
	}
	cfg.ListenMetricsUrls = urls
	cfg.ListenMetricsUrlsJSON = value
	return nil
}
