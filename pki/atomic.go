package pki

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// writeFileAtomic replaces path with data so that readers see either the old
// or the new content, never a mix: temp file in the same dir, write, fsync,
// chmod, rename, fsync the dir. The mode is set explicitly, so the umask does
// not matter.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return writeAtomic(path, data, mode, false)
}

// createFileAtomic is writeFileAtomic that fails with fs.ErrExist instead of
// replacing an existing file (hard link instead of rename: no clobber, even
// when racing another writer).
func createFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return writeAtomic(path, data, mode, true)
}

func writeAtomic(path string, data []byte, mode fs.FileMode, noClobber bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	// Tighten before any content lands (CreateTemp already uses 0600).
	if err = tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmpName, err)
	}
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmpName, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if noClobber {
		if err = os.Link(tmpName, path); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		if err = os.Remove(tmpName); err != nil {
			return fmt.Errorf("remove %s: %w", tmpName, err)
		}
	} else if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmpName, path, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
