// Package backup takes, stores, fetches, verifies and restores snapshots of
// an etcd cluster.
//
// A snapshot is two objects with one name (see Name): NAME.db, the bbolt
// database streamed from a member by etcd's Snapshot API (etcd appends its
// own sha256, which restore checks), and NAME.meta.json, the Meta written
// beside it (revision, key count and HashKV of the source member at that
// revision, members, versions, the file's sha256 and size, who took it and
// when). The metadata object is written last: a snapshot without one was
// never completed and is not listed.
//
// The pieces, each with one job:
//   - Save: stream a member's snapshot to a file, hash it, describe it;
//   - store: blob stores (a local directory, S3) that keep the two objects;
//   - Fetch: get a snapshot by reference (latest, a name, a file, s3://…)
//     and check its sha256 against its metadata;
//   - Verify: restore into a throw-away embedded etcd and compare revision,
//     key count and HashKV with the metadata;
//   - Restore: a new data dir from a snapshot, as etcd's recovery guide says
//     (revision bumped, old revisions marked compacted);
//   - retention: which snapshots to keep (a pure function).
package backup
