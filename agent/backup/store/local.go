package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

// Local keeps objects as files in one directory (mode 0600: a snapshot
// holds every key of the cluster).
type Local struct {
	Dir string
}

// TempPrefix marks files being written; List skips them and Clean removes
// the leftovers of a crash.
const TempPrefix = atomicfile.TempPrefix

// Where implements Store.
func (l Local) Where() string { return l.Dir }

// PutFile implements Store. A file on the directory's file system is
// hard-linked (no copy of a large database); otherwise it is copied, and the
// copy's sha256 compared with the source's.
func (l Local) PutFile(ctx context.Context, key, path string) error {
	if err := l.ensureDir(); err != nil {
		return err
	}
	dst := filepath.Join(l.Dir, key)
	if err := os.Link(path, dst); err == nil {
		return atomicfile.SyncDir(l.Dir)
	} else if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store %s: %s exists already", l.Dir, key)
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	defer src.Close()
	h := sha256.New()
	if err := l.write(ctx, key, io.TeeReader(src, h), func(tmp string) error {
		want := hex.EncodeToString(h.Sum(nil))
		if got, err := FileSHA256(tmp); err != nil || got != want {
			return fmt.Errorf("copied %s has sha256 %s (%v), the source %s", key, got, err, want)
		}
		return nil
	}); err != nil {
		return err
	}
	return nil
}

// Put implements Store.
func (l Local) Put(ctx context.Context, key string, data []byte) error {
	if err := l.ensureDir(); err != nil {
		return err
	}
	return l.write(ctx, key, bytes.NewReader(data), nil)
}

// write writes key atomically (writeAtomic), with check run on the
// complete temp file before it takes the key's name.
func (l Local) write(ctx context.Context, key string, r io.Reader, check func(tmp string) error) error {
	if err := writeAtomic(ctx, filepath.Join(l.Dir, key), r, check); err != nil {
		return fmt.Errorf("store %s in %s: %w", key, l.Dir, err)
	}
	return nil
}

// GetFile implements Store.
func (l Local) GetFile(ctx context.Context, key, dst string) error {
	src, err := os.Open(filepath.Join(l.Dir, key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s in %s: %w", key, l.Dir, ErrNotFound)
		}
		return err
	}
	defer src.Close()
	return WriteFileAtomic(ctx, dst, src)
}

// Get implements Store.
func (l Local) Get(_ context.Context, key string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(l.Dir, key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s in %s: %w", key, l.Dir, ErrNotFound)
	}
	return b, err
}

// List implements Store. A missing directory holds nothing.
func (l Local) List(context.Context) ([]string, error) {
	entries, err := os.ReadDir(l.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.Dir, err)
	}
	var keys []string
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), TempPrefix) {
			keys = append(keys, e.Name())
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete implements Store.
func (l Local) Delete(_ context.Context, key string) error {
	if err := os.Remove(filepath.Join(l.Dir, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// Clean removes what a crash left behind: temp files and dirs (TempPrefix)
// older than olderThan (younger ones may belong to a save or verify still
// running, e.g. `etcd-agent snapshot save` beside the agent).
func (l Local) Clean(olderThan time.Duration, now time.Time) {
	entries, _ := os.ReadDir(l.Dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), TempPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > olderThan {
			_ = os.RemoveAll(filepath.Join(l.Dir, e.Name()))
		}
	}
}

func (l Local) ensureDir() error {
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("snapshot dir: %w", err)
	}
	return nil
}

// FileSHA256 is the sha256 (hex) of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteFileAtomic copies r to path through a temp file beside it, so path
// is complete or absent.
func WriteFileAtomic(ctx context.Context, path string, r io.Reader) error {
	if err := writeAtomic(ctx, path, r, nil); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// writeAtomic writes r to a temp file beside path, fsyncs it, runs check
// (when set) on it, renames it to path and fsyncs the directory: path is
// complete or absent, whatever happens.
func writeAtomic(ctx context.Context, path string, r io.Reader, check func(tmp string) error) error {
	return atomicfile.WriteFrom(ctx, path, r, atomicfile.Options{Mode: 0o600, Check: check})
}
