package pki

import (
	"bytes"
	"context"
	"io/fs"

	"github.com/etcd-agent/etcd-agent/internal/atomicfile"
)

// writeFileAtomic replaces path with data so that readers see either the old
// or the new content, never a mix. The mode is set explicitly, so the umask
// does not matter.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return atomicfile.Write(path, data, mode)
}

// createFileAtomic is writeFileAtomic that fails with fs.ErrExist instead of
// replacing an existing file (no clobber, even when racing another writer).
func createFileAtomic(path string, data []byte, mode fs.FileMode) error {
	return atomicfile.WriteFrom(context.Background(), path, bytes.NewReader(data), atomicfile.Options{Mode: mode, NoClobber: true})
}
