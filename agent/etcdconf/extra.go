package etcdconf

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// ownedFlags are etcd flags the agent sets itself; an ExtraFlags entry for one
// of them is rejected with the reason shown.
var ownedFlags = map[string]string{
	"name":                      "the member name comes from the node identity (set node.name in the agent config)",
	"data-dir":                  "set node.dataDir in the agent config instead",
	"wal-dir":                   "the WAL lives in the data dir the runtime mounts",
	"config-file":               "the agent builds the whole configuration",
	"force-new-cluster":         "the agent decides membership; a forced new cluster discards peers",
	"unsafe-no-fsync":           "acknowledged writes must survive a crash",
	"client-cert-auth":          "client certificate auth is always on",
	"peer-client-cert-auth":     "peer certificate auth is always on",
	"trusted-ca-file":           "TLS files come from the agent's certificate dir (pki.dir)",
	"auto-tls":                  "TLS uses the agent's certificates",
	"peer-auto-tls":             "TLS uses the agent's certificates",
	"logger":                    "the runtime collects etcd's log from stderr",
	"log-outputs":               "the runtime collects etcd's log from stderr",
	"quota-backend-bytes":       "set etcd.quotaBackendBytes in the agent config instead",
	"auto-compaction-mode":      "the agent uses periodic compaction; set etcd.autoCompactionRetention in the agent config instead",
	"auto-compaction-retention": "set etcd.autoCompactionRetention in the agent config instead",
	"snapshot-count":            "set etcd.snapshotCount in the agent config instead",
	"heartbeat-interval":        "set etcd.heartbeatInterval in the agent config instead",
	"election-timeout":          "set etcd.electionTimeout in the agent config instead",
	"raft-read-timeout":         "process-wide in the embedded runtime",
	"raft-write-timeout":        "process-wide in the embedded runtime",
	"version":                   "not a server setting",
	"help":                      "not a server setting",
}

// ownedPrefixes and ownedParts cover families of flags the agent owns.
var (
	ownedPrefixes = map[string]string{
		"listen-":    "listeners are derived from Spec.NodeIP and the ports",
		"advertise-": "advertised URLs are derived from Spec.NodeIP and the ports",
		"initial-":   "bootstrap settings come from the agent's membership decision",
		"discovery":  "the agent runs discovery itself",
	}
	ownedParts = map[string]string{
		"cert": "TLS files come from the agent's certificate dir (pki.dir)",
		"key":  "TLS files come from the agent's certificate dir (pki.dir)",
		"crl":  "TLS files come from the agent's certificate dir (pki.dir)",
	}
)

// strictReconfigFlag is etcd's check that refuses a membership change that
// would cost quorum or add a member while too few are started. The agent's
// plans count on it as the last guard when a survey is already stale.
const strictReconfigFlag = "strict-reconfig-check"

// StrictReconfigOff tells whether the ExtraFlags entry raw turns etcd's
// strict reconfiguration check off, however it is spelled: one or two
// dashes, "=" or blanks before the value. Such an entry is refused.
func StrictReconfigOff(raw string) bool {
	body := strings.TrimLeft(strings.TrimSpace(raw), "-")
	name, value, ok := strings.Cut(body, "=")
	if !ok {
		f := strings.Fields(body)
		if len(f) != 2 {
			return false
		}
		name, value = f[0], f[1]
	}
	if strings.TrimSpace(name) != strictReconfigFlag {
		return false
	}
	on, err := strconv.ParseBool(strings.TrimSpace(value))
	return err == nil && !on
}

func strictReconfigOffError(raw string) error {
	return fmt.Errorf("extra flag %q turns off etcd's strict reconfiguration check, which etcd-agent relies on "+
		"to refuse a membership change that would cost quorum (remove it; etcd keeps the check on by default)", raw)
}

// extraFlag is one parsed ExtraFlags entry.
type extraFlag struct {
	name, value string
	hasValue    bool
}

// parseExtraFlag splits "--name=value" (or "--name" for a boolean).
func parseExtraFlag(raw string) (extraFlag, error) {
	body, ok := strings.CutPrefix(raw, "--")
	if !ok || body == "" || strings.HasPrefix(body, "-") {
		return extraFlag{}, fmt.Errorf("extra flag %q: want --flag=value", raw)
	}
	name, value, hasValue := strings.Cut(body, "=")
	if name == "" || strings.ContainsAny(name, " \t") {
		return extraFlag{}, fmt.Errorf("extra flag %q: want --flag=value", raw)
	}
	return extraFlag{name: name, value: value, hasValue: hasValue}, nil
}

// OwnedFlag tells whether the agent sets the etcd flag name (without "--")
// itself, and why; such a flag is refused in ExtraFlags.
func OwnedFlag(name string) (reason string, owned bool) {
	r := ownedReason(name)
	return r, r != ""
}

// ownedReason tells why the agent owns flag name, or "" when it does not.
func ownedReason(name string) string {
	if name == metricsURLsFlag {
		return "" // allowed on loopback: checkMetricsURLs
	}
	if r, ok := ownedFlags[name]; ok {
		return r
	}
	for p, r := range ownedPrefixes {
		if strings.HasPrefix(name, p) {
			return r
		}
	}
	for p, r := range ownedParts {
		if strings.Contains(name, p) {
			return r
		}
	}
	return ""
}

// CheckExtraFlag rejects a malformed, owned, unknown or badly typed ExtraFlags
// entry, as Validate does, so that a caller can attribute the problem to the
// entry. The flag must map onto an embed.Config setting so that both runtimes
// can apply it.
func CheckExtraFlag(raw string) error {
	if StrictReconfigOff(raw) {
		return strictReconfigOffError(raw)
	}
	f, err := parseExtraFlag(raw)
	if err != nil {
		return err
	}
	if r := ownedReason(f.name); r != "" {
		return fmt.Errorf("extra flag --%s is set by etcd-agent and cannot be overridden (%s)", f.name, r)
	}
	if f.name == metricsURLsFlag {
		return checkMetricsURLs(f.value)
	}
	if f.name == featureGatesFlag {
		if !f.hasValue {
			return fmt.Errorf("extra flag --%s needs a value (--%s=Gate=true,...)", f.name, f.name)
		}
		return checkFeatureGates(f.value)
	}
	var cfg embed.Config
	if err := applyExtraFlag(&cfg, f); err != nil {
		return err
	}
	return nil
}

// applyExtraFlag sets the embed.Config field whose JSON name is the flag name.
// etcd names its config-file keys after its flags, so this gives the flag the
// same meaning in-process as on the command line.
//
// --feature-gates has no such field: it is applied to cfg.ServerFeatureGate,
// on top of the gates already set, as etcd applies the flag.
func applyExtraFlag(cfg *embed.Config, f extraFlag) error {
	if f.name == metricsURLsFlag {
		return applyMetricsURLs(cfg, f.value)
	}
	if f.name == featureGatesFlag {
		if err := setFeatureGates(cfg.ServerFeatureGate, f.value); err != nil {
			return fmt.Errorf("extra flag --%s=%s: %w", f.name, f.value, err)
		}
		return nil
	}
	v, ok := configField(reflect.ValueOf(cfg).Elem(), f.name)
	if !ok {
		return fmt.Errorf("extra flag --%s is not an etcd server setting both runtimes support", f.name)
	}
	// bad says what the flag takes in words, not strconv's.
	bad := func(wanted string, err error) error {
		if errors.Is(err, strconv.ErrRange) {
			return fmt.Errorf("extra flag --%s=%s: out of range", f.name, f.value)
		}
		return fmt.Errorf("extra flag --%s=%s: want %s, got %q", f.name, f.value, wanted, f.value)
	}
	if !f.hasValue && v.Kind() != reflect.Bool {
		return fmt.Errorf("extra flag --%s needs a value (--%s=VALUE)", f.name, f.name)
	}
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(f.value)
		if err != nil {
			return bad("a duration like 100ms or 5s", err)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(f.value)
	case v.Kind() == reflect.Bool:
		b := true
		if f.hasValue {
			var err error
			if b, err = strconv.ParseBool(f.value); err != nil {
				return bad("true or false", err)
			}
		}
		v.SetBool(b)
	case v.CanInt():
		n, err := strconv.ParseInt(f.value, 0, v.Type().Bits())
		if err != nil {
			return bad("an integer", err)
		}
		v.SetInt(n)
	case v.CanUint():
		n, err := strconv.ParseUint(f.value, 0, v.Type().Bits())
		if err != nil {
			return bad("a whole number (0 or more)", err)
		}
		v.SetUint(n)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var parts []string
		if f.value != "" {
			parts = strings.Split(f.value, ",")
		}
		v.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("extra flag --%s is not an etcd server setting both runtimes support", f.name)
	}
	return nil
}

// configField finds the top-level embed.Config field tagged json:"name".
func configField(cfg reflect.Value, name string) (reflect.Value, bool) {
	t := cfg.Type()
	for i := range t.NumField() {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if tag == name && t.Field(i).IsExported() {
			return cfg.Field(i), true
		}
	}
	return reflect.Value{}, false
}
