package backup

import (
	"context"

	"github.com/etcd-agent/etcd-agent/agent/backup/store"
	"github.com/etcd-agent/etcd-agent/agent/config"
)

// OpenSources builds the stores a configuration names: the node's snapshot
// dir, then S3 when a bucket is set (keys "<prefix><cluster name>/NAME.db",
// so clusters can share a bucket). Nothing is contacted yet.
func OpenSources(ctx context.Context, cfg *config.Config) (Sources, error) {
	b := cfg.Backup
	src := Sources{
		Stores: []store.Store{store.Local{Dir: b.Dir}},
		S3:     store.S3Config{Region: b.S3.Region, Endpoint: b.S3.Endpoint},
	}
	if b.S3.Bucket != "" {
		s3cfg := src.S3
		s3cfg.Bucket, s3cfg.Prefix = b.S3.Bucket, b.S3.Prefix+cfg.Cluster.Name+"/"
		st, err := store.NewS3(ctx, s3cfg)
		if err != nil {
			return Sources{}, err
		}
		src.Stores = append(src.Stores, st)
	}
	return src, nil
}
