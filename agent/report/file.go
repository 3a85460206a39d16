package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp report: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename

	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write temp report: %w", err)
	}
	if err := tmp.Chmod(fileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod temp report: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync temp report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close temp report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename report into place: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open report dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync report dir: %w", err)
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
