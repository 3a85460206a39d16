// Command node-fleetlock is the node test's stand-in for Zincati's
// fleet_lock strategy (Zincati does not run on the Debian test nodes): it
// reads base_url and the group from Zincati's config fragments, as Zincati
// does, and POSTs <base_url>v1/pre-reboot or v1/steady-state with the
// protocol header and {"client_params": {"id", "group"}}, again after every
// refusal or unreachable agent until a 200. Zincati asks again every 5
// minutes (its state machine's refresh period, plus up to 10% jitter); the
// node test passes a short --interval. One line per answer on stdout:
//
//	<RFC 3339 time> <status|unreachable> <kind|granted> <value>
//
//	node-fleetlock --id ID [--config-dir DIR] [--interval 1s] [--timeout 10m] pre-reboot|steady-state
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// zincatiConfig is the part of Zincati's configuration this client uses.
type zincatiConfig struct {
	Identity struct {
		Group string `toml:"group"`
	} `toml:"identity"`
	Updates struct {
		Strategy  string `toml:"strategy"`
		FleetLock struct {
			BaseURL string `toml:"base_url"`
		} `toml:"fleet_lock"`
	} `toml:"updates"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "node-fleetlock:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("node-fleetlock", flag.ContinueOnError)
	id := fs.String("id", "", "client_params.id: the node's Zincati ID (required)")
	dir := fs.String("config-dir", "/etc/zincati/config.d", "Zincati's config fragments (*.toml, read in name order, later ones override)")
	interval := fs.Duration("interval", time.Second, "wait between two requests after a refusal (Zincati: 5 min)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" || fs.NArg() != 1 || (fs.Arg(0) != "pre-reboot" && fs.Arg(0) != "steady-state") {
		return errors.New("usage: node-fleetlock --id ID [--config-dir DIR] [--interval D] [--timeout D] pre-reboot|steady-state")
	}
	cfg, err := readConfig(*dir)
	if err != nil {
		return err
	}
	base, err := url.Parse(cfg.Updates.FleetLock.BaseURL)
	if err != nil {
		return fmt.Errorf("updates.fleet_lock.base_url %q: %w", cfg.Updates.FleetLock.BaseURL, err)
	}
	// Relative to base_url, as Zincati joins it.
	endpoint := base.ResolveReference(&url.URL{Path: "v1/" + fs.Arg(0)}).String()
	group := cfg.Identity.Group
	if group == "" {
		group = "default" // Zincati's
	}
	body, err := json.Marshal(map[string]any{"client_params": map[string]string{"id": *id, "group": group}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	for {
		status, kind, value, err := post(ctx, endpoint, body)
		now := time.Now().UTC().Format(time.RFC3339Nano)
		switch {
		case err != nil:
			fmt.Printf("%s unreachable - %v\n", now, err)
		case status == http.StatusOK:
			fmt.Printf("%s %d granted %s\n", now, status, value)
			return nil
		default:
			fmt.Printf("%s %d %s %s\n", now, status, kind, value)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("POST %s: no 200 within %s", endpoint, *timeout)
		case <-time.After(*interval):
		}
	}
}

// readConfig merges the *.toml fragments of dir and checks that they select
// the fleet_lock strategy with a base_url.
func readConfig(dir string) (zincatiConfig, error) {
	var cfg zincatiConfig
	files, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return cfg, err
	}
	slices.Sort(files)
	for _, f := range files {
		if _, err := toml.DecodeFile(f, &cfg); err != nil {
			return cfg, fmt.Errorf("zincati config %s: %w", f, err)
		}
	}
	switch {
	case len(files) == 0:
		return cfg, fmt.Errorf("no Zincati config fragment in %s: is the node's Ignition applied?", dir)
	case cfg.Updates.Strategy != "fleet_lock":
		return cfg, fmt.Errorf("zincati config in %s: updates.strategy is %q, want fleet_lock", dir, cfg.Updates.Strategy)
	case cfg.Updates.FleetLock.BaseURL == "":
		return cfg, fmt.Errorf("zincati config in %s: updates.fleet_lock.base_url is empty", dir)
	}
	return cfg, nil
}

// post sends one request; err is a transport failure (the agent is not
// listening: the node is still booting).
func post(ctx context.Context, endpoint string, body []byte) (status int, kind, value string, err error) {
	rctx, cancel := context.WithTimeout(ctx, 4*time.Minute) // the agent may snapshot before a grant
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("fleet-lock-protocol", "true")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Kind, Value string }
	if err := json.Unmarshal(b, &e); err != nil || (resp.StatusCode != http.StatusOK && e.Kind == "") {
		return resp.StatusCode, "no_error_body", strings.TrimSpace(string(b)), nil
	}
	return resp.StatusCode, e.Kind, e.Value, nil
}
