package etcdconf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/features"
)

// featureGatesFlag is etcd's flag (and config-file key) for feature gates.
const featureGatesFlag = "feature-gates"

// corruptionGates are the etcd feature gates the agent turns on for every
// member, so that replicas that diverge are detected by etcd itself. In etcd
// v3.7 both are alpha gates, off by default:
//
//   - InitialCorruptCheck: a member with data compares its HashKV with its
//     peers before it serves any traffic, and refuses to start on a mismatch
//     (same revision, same compact revision, different hash).
//   - CompactHashCheck: the leader compares the hashes every member stores
//     when it compacts, every --compact-hash-check-time (etcd's default 1m),
//     and raises the CORRUPT alarm on a mismatch. It costs next to nothing,
//     since the agent always runs auto-compaction.
//
// The third check, the leader's full hash at the latest revision every
// --corrupt-check-time, scans the whole database and stays off by default;
// ExtraFlags may turn it on. `etcd-agent status` runs the same comparison on
// demand.
var corruptionGates = []featuregate.Feature{features.CompactHashCheck, features.InitialCorruptCheck}

// corruptionGatesValue is the value of --feature-gates that turns the
// corruption checks on: "CompactHashCheck=true,InitialCorruptCheck=true".
func corruptionGatesValue() string {
	parts := make([]string, len(corruptionGates))
	for i, g := range corruptionGates {
		parts[i] = string(g) + "=true"
	}
	return strings.Join(parts, ",")
}

// setFeatureGates applies value ("Gate=bool,...") to gate, as etcd's
// --feature-gates flag does: on top of what is already set.
func setFeatureGates(gate featuregate.FeatureGate, value string) error {
	mg, ok := gate.(featuregate.MutableFeatureGate)
	if !ok {
		return fmt.Errorf("etcd's feature gate is not settable (%T)", gate)
	}
	return mg.Set(value)
}

// checkFeatureGates accepts an ExtraFlags --feature-gates value when etcd
// knows every gate in it and the corruption checks stay on once it is applied
// after the agent's own gates (the order Flags and EmbedConfig use).
func checkFeatureGates(value string) error {
	gate := features.NewDefaultServerFeatureGate("check", nil)
	if err := setFeatureGates(gate, corruptionGatesValue()); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	// Each Gate=bool in words first: etcd's own message quotes strconv.
	for _, kv := range strings.Split(value, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, b, ok := strings.Cut(kv, "=")
		if _, err := strconv.ParseBool(strings.TrimSpace(b)); ok && err != nil {
			return fmt.Errorf("extra flag --%s=%s: gate %s wants true or false, got %q", featureGatesFlag, value, strings.TrimSpace(name), b)
		}
	}
	if err := setFeatureGates(gate, value); err != nil {
		return fmt.Errorf("extra flag --%s=%s: %w", featureGatesFlag, value, err)
	}
	var off []string
	for _, g := range corruptionGates {
		if !gate.Enabled(g) {
			off = append(off, string(g))
		}
	}
	if len(off) > 0 {
		slices.Sort(off)
		return fmt.Errorf("extra flag --%s=%s turns off %s, which etcd-agent keeps on so that diverging replicas are detected",
			featureGatesFlag, value, strings.Join(off, " and "))
	}
	return nil
}
