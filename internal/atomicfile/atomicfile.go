// Package atomicfile replaces files so that a reader, or the node after a
// crash or power cut, sees the old content or the new one, never a mix or a
// partial file: a temp file beside the target, written, fsynced, renamed
// over the target, and the directory fsynced so the rename itself survives.
//
// Every file the agent keeps (certificates, side files beside the data dir,
// the status report, snapshots) is written through here.
package atomicfile

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temp file this package makes, so a
// cleanup after a crash can find leftovers.
const TempPrefix = ".tmp-"

// Options tune a write. The zero value replaces the file with mode 0600.
type Options struct {
	// Mode is the file's mode, set explicitly (the umask does not apply).
	// Zero: 0600.
	Mode fs.FileMode
	// NoClobber fails with fs.ErrExist instead of replacing an existing
	// file (a hard link instead of a rename: safe against a racing writer).
	NoClobber bool
	// Check, when set, runs on the complete, synced temp file before it
	// is moved into place; an error leaves the target untouched.
	Check func(tmp string) error
}

// Write replaces path with data.
func Write(path string, data []byte, mode fs.FileMode) error {
	return WriteFrom(context.Background(), path, bytes.NewReader(data), Options{Mode: mode})
}

// WriteFrom replaces path with what r yields; a cancelled ctx stops a long
// copy and leaves the target untouched.
func WriteFrom(ctx context.Context, path string, r io.Reader, o Options) (err error) {
	mode := o.Mode
	if mode == 0 {
		mode = 0o600
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, TempPrefix+base+"-*")
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
	if _, err = io.Copy(tmp, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmpName, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if o.Check != nil {
		if err = o.Check(tmpName); err != nil {
			return err
		}
	}
	if o.NoClobber {
		if err = os.Link(tmpName, path); err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		if err = os.Remove(tmpName); err != nil {
			return fmt.Errorf("remove %s: %w", tmpName, err)
		}
	} else if err = os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmpName, path, err)
	}
	return SyncDir(dir)
}

// SyncDir makes a rename, link or removal in dir durable.
func SyncDir(dir string) error {
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

// Rename moves from to to and makes the move durable (both directories
// fsynced): used to put a whole directory in place.
func Rename(from, to string) error {
	if err := os.Rename(from, to); err != nil {
		return err
	}
	if err := SyncDir(filepath.Dir(to)); err != nil {
		return err
	}
	if filepath.Dir(from) != filepath.Dir(to) {
		return SyncDir(filepath.Dir(from))
	}
	return nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
