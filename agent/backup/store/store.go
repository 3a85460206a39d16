// Package store keeps snapshot objects: a local directory or an S3 bucket
// (or an S3-compatible store). A store knows nothing of etcd; it puts, gets,
// lists and deletes named blobs, and checks a file it stored against the
// sha256 it was given.
package store

import (
	"context"
	"errors"
)

// ErrNotFound is returned (wrapped) for a key the store does not hold.
var ErrNotFound = errors.New("not found")

// Store is one place snapshots are kept. Keys are flat file names
// ("NAME.db", "NAME.meta.json").
type Store interface {
	// Where names the store for logs and status: a directory, or
	// s3://bucket/prefix.
	Where() string
	// PutFile stores the file at path under key and proves the stored
	// copy identical (its sha256 compared, or a hard link).
	PutFile(ctx context.Context, key, path string) error
	// Put stores a small object.
	Put(ctx context.Context, key string, data []byte) error
	// GetFile writes the object to dst (atomically: dst appears complete
	// or not at all).
	GetFile(ctx context.Context, key, dst string) error
	// Get reads a small object.
	Get(ctx context.Context, key string) ([]byte, error)
	// List returns every key, sorted.
	List(ctx context.Context) ([]string, error)
	// Delete removes the object; a missing one is not an error.
	Delete(ctx context.Context, key string) error
}
