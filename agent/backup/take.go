package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/etcd-agent/etcd-agent/agent/backup/retention"
	"github.com/etcd-agent/etcd-agent/agent/backup/store"
)

// Take saves a snapshot (see Save) and puts it into every store: the
// snapshot first, its metadata last, so a snapshot is listed only once
// complete. It returns the metadata and where the snapshot now is; an error
// names every store that failed (the snapshot may be in the others).
func Take(ctx context.Context, opts SaveOptions, stores []store.Store) (Meta, []string, error) {
	file, m, err := Save(ctx, opts)
	if err != nil {
		return Meta{}, nil, err
	}
	defer os.Remove(file)
	var where []string
	var errs []error
	for _, st := range stores {
		if err := Put(ctx, st, file, m); err != nil {
			errs = append(errs, err)
			continue
		}
		where = append(where, st.Where())
	}
	return m, where, errors.Join(errs...)
}

// Put stores one snapshot file and its metadata in st.
func Put(ctx context.Context, st store.Store, file string, m Meta) error {
	if err := st.PutFile(ctx, m.Name+SnapshotSuffix, file); err != nil {
		return fmt.Errorf("store snapshot %s: %w", m.Name, err)
	}
	if err := st.Put(ctx, m.Name+MetaSuffix, m.Marshal()); err != nil {
		return fmt.Errorf("store snapshot metadata %s: %w", m.Name, err)
	}
	return nil
}

// orphanAge is how old a snapshot without metadata (an interrupted upload)
// must be before Prune removes it: older than any upload in progress.
const orphanAge = 6 * time.Hour

// Prune applies the retention policy to st and returns the names it
// deleted. Metadata goes first, so a half-deleted snapshot is never listed
// as complete. protect names snapshots always kept (the newest verified).
func Prune(ctx context.Context, st store.Store, p retention.Policy, now time.Time, protect ...string) ([]string, error) {
	keys, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	complete := map[string]bool{}
	var snaps []retention.Snapshot
	for _, k := range keys {
		name, ok := strings.CutSuffix(k, MetaSuffix)
		if !ok {
			continue
		}
		if n, err := ParseName(name); err == nil {
			complete[name] = true
			snaps = append(snaps, retention.Snapshot{Name: name, Time: n.Time})
		}
	}
	_, drop := retention.Keep(snaps, p, now, protect...)
	var deleted []string
	var errs []error
	for _, s := range drop {
		if err := st.Delete(ctx, s.Name+MetaSuffix); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := st.Delete(ctx, s.Name+SnapshotSuffix); err != nil {
			errs = append(errs, err)
		}
		deleted = append(deleted, s.Name)
	}
	for _, k := range keys {
		name, ok := strings.CutSuffix(k, SnapshotSuffix)
		if !ok || complete[name] {
			continue
		}
		if n, err := ParseName(name); err == nil && now.Sub(n.Time) > orphanAge {
			if err := st.Delete(ctx, k); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return deleted, errors.Join(errs...)
}
