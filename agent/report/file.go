package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

// fileMode lets the operator user read the report without root.
const fileMode = 0o644

// Write stores r at path as indented JSON, atomically: a reader sees the old
// report or the new one, never a partial file, and a crash leaves no partial
// file behind. The parent directory is created (0755) when missing.
func Write(path string, r NodeReport) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	data = append(data, '\n')

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	if err := atomicfile.Write(path, data, fileMode); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Read loads the report at path. A missing file gives an error that
// matches fs.ErrNotExist: the agent has not started, or has stopped and
// systemd removed its runtime directory.
func Read(path string) (NodeReport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return NodeReport{}, fmt.Errorf("read report: %w", err)
	}
	var r NodeReport
	if err := json.Unmarshal(data, &r); err != nil {
		return NodeReport{}, fmt.Errorf("decode report %s: %w", path, err)
	}
	return r, nil
}
