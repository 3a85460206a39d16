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
	// AllowPartial lets "latest" choose among the stores that answered
	// when another did not (which may hold a newer one). Zero: "latest"
	// fails naming the store.
	AllowPartial bool
}

// Fetch copies the snapshot that ref names to the file dst and returns its
// metadata, after checking dst's size and sha256 against it. ref is one of:
//   - "latest": the newest complete snapshot (one with its metadata) in
//     src.Stores, by cluster generation and revision (see Newest);
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
		st, m, err := Newest(ctx, src)
		if err != nil {
			return Meta{}, err
		}
		return fetchFrom(ctx, st, m.Name, dst)
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

// Newest finds the newest complete snapshot in src.Stores (see Newer: by
// cluster generation, then revision), its store and metadata; the same
// snapshot in several stores is taken from the later one (S3 after the
// local dir: the copy a recovery would use). A store that does not answer
// (list or metadata) is an error naming it, unless src.AllowPartial: it may
// hold a newer snapshot. So are snapshots of two clusters at the newest
// generation (two recoveries, or a cluster bootstrapped again under the
// same name): which is newer is for a person to say, by name.
func Newest(ctx context.Context, src Sources) (store.Store, Meta, error) {
	var best *candidate
	var all []candidate
	var failed []error
	var answered []string
	for _, st := range src.Stores {
		cands, err := newestPerCluster(ctx, st)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		answered = append(answered, st.Where())
		for _, c := range cands {
			all = append(all, c)
			if best == nil || !Newer(best.m, c.m) {
				best = &c
			}
		}
	}
	if len(failed) > 0 && !src.AllowPartial {
		choose := ""
		if len(answered) > 0 {
			choose = ", or pass --allow-partial to choose among " + strings.Join(answered, ", ")
		}
		return nil, Meta{}, fmt.Errorf("cannot tell the latest snapshot: a store that does not answer may hold a newer one (make it answer, name a snapshot from `etcd-agent snapshot list`%s): %w", choose, errors.Join(failed...))
	}
	if best == nil {
		where := make([]string, len(src.Stores))
		for i, st := range src.Stores {
			where[i] = st.Where()
		}
		return nil, Meta{}, errors.Join(append(failed, fmt.Errorf("no snapshot in %s", strings.Join(where, ", ")))...)
	}
	for _, c := range all {
		if c.m.Generation == best.m.Generation && c.m.ClusterID != best.m.ClusterID {
			return nil, Meta{}, fmt.Errorf("cannot tell the latest snapshot: %s (cluster %s, revision %d) and %s (cluster %s, revision %d) are of two clusters at recovery generation %d; name the one to use (`etcd-agent snapshot list`)",
				best.m.Name, best.m.ClusterID, best.m.Revision, c.m.Name, c.m.ClusterID, c.m.Revision, best.m.Generation)
		}
	}
	return best.st, best.m, nil
}

type candidate struct {
	st store.Store
	m  Meta
}

// newestPerCluster is, for each cluster ID that has complete snapshots in
// st, the one at the highest revision (the name says cluster and revision;
// its metadata the generation).
func newestPerCluster(ctx context.Context, st store.Store) ([]candidate, error) {
	names, err := List(ctx, st)
	if err != nil {
		return nil, err
	}
	type top struct {
		name string
		n    Name
	}
	tops := map[uint64]top{}
	for _, name := range names {
		n, _ := ParseName(name) // List keeps parsed names only
		if t, ok := tops[n.ClusterID]; !ok || n.Revision > t.n.Revision || n.Revision == t.n.Revision && n.Time.After(t.n.Time) {
			tops[n.ClusterID] = top{name, n}
		}
	}
	var out []candidate
	for _, t := range tops {
		b, err := st.Get(ctx, t.name+MetaSuffix)
		if err != nil {
			return nil, err
		}
		m, err := ParseMeta(b, st.Where()+"/"+t.name+MetaSuffix)
		if err != nil {
			return nil, err
		}
		m.Name = t.name
		out = append(out, candidate{st: st, m: m})
	}
	return out, nil
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

// FetchFrom is Fetch of snapshot name from the store st.
func FetchFrom(ctx context.Context, st store.Store, name, dst string) (Meta, error) {
	m, err := fetchFrom(ctx, st, name, dst)
	if err != nil {
		_ = os.Remove(dst)
		return Meta{}, fmt.Errorf("fetch snapshot %s from %s: %w", name, st.Where(), err)
	}
	return m, nil
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
