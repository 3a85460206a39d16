package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/etcd-agent/etcd-agent/agent/backup/store"
)

// Latest is the reference to the newest complete snapshot in any store.
const Latest = "latest"

// Sources is where Fetch looks for snapshots.
type Sources struct {
	// Stores are searched for "latest" (the newest of all) and for a
	// snapshot name (the first that has it).
	Stores []store.Store
	// S3 gives the region and endpoint for s3://bucket/key references
	// (bucket and key come from the reference).
	S3 store.S3Config
}

// Fetch copies the snapshot that ref names to the file dst and returns its
// metadata, after checking dst's size and sha256 against it. ref is one of:
//   - "latest": the newest complete snapshot (one with its metadata) in
//     any of src.Stores;
//   - a snapshot NAME, as `etcd-agent snapshot list` prints it;
//   - a local FILE (NAME.db; its NAME.meta.json beside it, if there is one);
//   - s3://bucket/key of a NAME.db object (its NAME.meta.json beside it).
//
// A local file without metadata (one saved by `etcdctl snapshot save`, say)
// is accepted: its sha256, size and revision are read from the file, and
// Meta.Reason says it had no metadata. etcd's own sha256 trailer is still
// checked by Restore.
func Fetch(ctx context.Context, src Sources, ref, dst string) (Meta, error) {
	m, err := fetch(ctx, src, ref, dst)
	if err != nil {
		_ = os.Remove(dst)
		return Meta{}, fmt.Errorf("fetch snapshot %s: %w", ref, err)
	}
	return m, nil
}

func fetch(ctx context.Context, src Sources, ref, dst string) (Meta, error) {
	switch {
	case ref == Latest:
		st, name, err := Newest(ctx, src.Stores)
		if err != nil {
			return Meta{}, err
		}
		return fetchFrom(ctx, st, name, dst)
	case strings.HasPrefix(ref, "s3://"):
		u, err := url.Parse(ref)
		if err != nil || u.Host == "" || !strings.HasSuffix(u.Path, SnapshotSuffix) {
			return Meta{}, fmt.Errorf("%q is not s3://bucket/path/NAME%s", ref, SnapshotSuffix)
		}
		key := strings.TrimPrefix(u.Path, "/")
		cfg := src.S3
		cfg.Bucket, cfg.Prefix = u.Host, ""
		if dir := path.Dir(key); dir != "." {
			cfg.Prefix = dir + "/"
		}
		st, err := store.NewS3(ctx, cfg)
		if err != nil {
			return Meta{}, err
		}
		return fetchFrom(ctx, st, strings.TrimSuffix(path.Base(key), SnapshotSuffix), dst)
	case isFile(ref):
		return fetchFile(ctx, ref, dst)
	}
	if _, err := ParseName(ref); err != nil {
		return Meta{}, fmt.Errorf("not a file, and %w (use latest, a NAME from `etcd-agent snapshot list`, a FILE or s3://bucket/key)", err)
	}
	var errs []error
	for _, st := range src.Stores {
		m, err := fetchFrom(ctx, st, ref, dst)
		if err == nil {
			return m, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return Meta{}, errors.New("no snapshot store configured (backup.dir, backup.s3)")
	}
	return Meta{}, errors.Join(errs...)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// Newest finds the newest complete snapshot across stores: its store and
// name. On a tie the later store wins (S3 after the local dir: the copy a
// recovery would use).
func Newest(ctx context.Context, stores []store.Store) (store.Store, string, error) {
	var best string
	var bestStore store.Store
	var errs []error
	for _, st := range stores {
		names, err := List(ctx, st)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n := len(names); n > 0 && names[n-1] >= best {
			best, bestStore = names[n-1], st
		}
	}
	if bestStore == nil {
		where := make([]string, len(stores))
		for i, st := range stores {
			where[i] = st.Where()
		}
		errs = append(errs, fmt.Errorf("no snapshot in %s", strings.Join(where, ", ")))
		return nil, "", errors.Join(errs...)
	}
	return bestStore, best, nil
}

// List returns the names of the complete snapshots in st (both objects
// present), oldest first.
func List(ctx context.Context, st store.Store) ([]string, error) {
	keys, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range keys {
		name, ok := strings.CutSuffix(k, MetaSuffix)
		if !ok {
			continue
		}
		if _, err := ParseName(name); err == nil && slices.Contains(keys, name+SnapshotSuffix) {
			names = append(names, name)
		}
	}
	return names, nil
}

// fetchFrom gets NAME's metadata and snapshot from st and checks them.
func fetchFrom(ctx context.Context, st store.Store, name, dst string) (Meta, error) {
	b, err := st.Get(ctx, name+MetaSuffix)
	if err != nil {
		return Meta{}, err
	}
	m, err := ParseMeta(b, st.Where()+"/"+name+MetaSuffix)
	if err != nil {
		return Meta{}, err
	}
	if err := st.GetFile(ctx, name+SnapshotSuffix, dst); err != nil {
		return Meta{}, err
	}
	if err := CheckFile(dst, m); err != nil {
		return Meta{}, fmt.Errorf("%s/%s%s: %w", st.Where(), name, SnapshotSuffix, err)
	}
	return m, nil
}

// fetchFile copies a local snapshot file, with its metadata when it has one.
func fetchFile(ctx context.Context, file, dst string) (Meta, error) {
	metaFile := strings.TrimSuffix(file, SnapshotSuffix) + MetaSuffix
	b, err := os.ReadFile(metaFile)
	var m Meta
	switch {
	case err == nil:
		if m, err = ParseMeta(b, metaFile); err != nil {
			return Meta{}, err
		}
	case errors.Is(err, fs.ErrNotExist):
		if m, err = describeFile(file); err != nil {
			return Meta{}, err
		}
	default:
		return Meta{}, err
	}
	if !sameFile(file, dst) {
		f, err := os.Open(file)
		if err != nil {
			return Meta{}, err
		}
		defer f.Close()
		if err := store.WriteFileAtomic(ctx, dst, f); err != nil {
			return Meta{}, err
		}
	}
	if err := CheckFile(dst, m); err != nil {
		return Meta{}, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// describeFile is the metadata of a snapshot file that came without any.
func describeFile(file string) (Meta, error) {
	h, err := hashSnapshotFile(file)
	if err != nil {
		return Meta{}, err
	}
	if !h.trailerOK() {
		return Meta{}, fmt.Errorf("%s has no metadata beside it and does not end with the sha256 etcd appends to a snapshot: truncated, damaged, or not saved through etcd's Snapshot API", file)
	}
	sum, size := h.sum(), h.n
	rev, err := fileRevision(file)
	if err != nil {
		return Meta{}, err
	}
	return Meta{
		Name: strings.TrimSuffix(filepath.Base(file), SnapshotSuffix), Revision: rev,
		SHA256: sum, Size: size, Reason: "file without etcd-agent metadata",
	}, nil
}

// CheckFile proves file is the snapshot m describes: same size, ending with
// etcd's sha256 of the database before it, that sha256 the metadata's. A
// truncated or corrupted file fails here, before anything restores it.
func CheckFile(file string, m Meta) error {
	h, err := hashSnapshotFile(file)
	if err != nil {
		return err
	}
	if h.n != m.Size {
		return fmt.Errorf("snapshot has %d bytes, its metadata says %d: truncated or corrupt (fetch it again or use another snapshot)", h.n, m.Size)
	}
	if !h.trailerOK() {
		return fmt.Errorf("snapshot does not end with the sha256 of its database: corrupt (fetch it again or use another snapshot)")
	}
	if sum := h.sum(); sum != m.SHA256 {
		return fmt.Errorf("snapshot sha256 %s differs from its metadata's %s: another or a corrupt snapshot (fetch it again or use another snapshot)", sum, m.SHA256)
	}
	return nil
}
