package butane

import (
	"errors"
	"fmt"

	butaneconfig "github.com/coreos/butane/config"
	"github.com/coreos/butane/config/common"
	ign34 "github.com/coreos/ignition/v2/config/v3_4"
	ign35 "github.com/coreos/ignition/v2/config/v3_5"
	"github.com/coreos/vcontext/report"
)

// ignitionVersions maps the supported fcos Butane versions to the Ignition
// spec they produce and that spec's parser.
var ignitionVersions = map[string]struct {
	ignition string
	parse    func([]byte) (report.Report, error)
}{
	"1.5.0": {"3.4.0", func(b []byte) (report.Report, error) { _, r, err := ign34.Parse(b); return r, err }},
	"1.6.0": {"3.5.0", func(b []byte) (report.Report, error) { _, r, err := ign35.Parse(b); return r, err }},
}

// translate turns Butane YAML into compact Ignition JSON with Butane's own
// translator and checks it with Ignition's parser for that spec version.
// Any report entry from either, a warning included, is an error: Butane has
// no strict mode, and a warning here is a surprise on the node.
func translate(bu []byte, butaneVersion string) ([]byte, error) {
	v, ok := ignitionVersions[butaneVersion]
	if !ok {
		return nil, fmt.Errorf("translate butane: unsupported fcos version %q", butaneVersion)
	}
	ign, rpt, err := butaneconfig.TranslateBytes(bu, common.TranslateBytesOptions{})
	if err := reportError("translate butane", rpt, err); err != nil {
		return nil, err
	}
	rpt, err = v.parse(ign)
	if err := reportError("validate ignition "+v.ignition, rpt, err); err != nil {
		return nil, err
	}
	return ign, nil
}

// reportError combines a failure and every report entry into one error.
func reportError(what string, rpt report.Report, err error) error {
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range rpt.Entries {
		errs = append(errs, errors.New(e.String()))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w", what, errors.Join(errs...))
}
