package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config says where snapshots go in S3.
type S3Config struct {
	// Bucket holds the snapshots. Required.
	Bucket string
	// Prefix is prepended to every key ("etcd/prod/"). Zero: none.
	Prefix string
	// Region of the bucket. Zero: the SDK's default chain (AWS_REGION,
	// the shared config, …).
	Region string
	// Endpoint is an S3-compatible store's URL (MinIO, versitygw, …);
	// path-style addressing is used with it. Zero: AWS.
	Endpoint string
}

// S3 keeps objects in an S3 bucket. Credentials come from the SDK's default
// chain: on EC2 the instance role through IMDS.
type S3 struct {
	cfg    S3Config
	client *s3.Client
	// partSize is the multipart upload's part size (tests set it small).
	partSize int64
}

// NewS3 builds the client. It does not touch the network: the first call
// finds out whether bucket, credentials and endpoint work.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 store: bucket required")
	}
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		// Any region signs for an S3-compatible endpoint; AWS needs the
		// bucket's, which the config validation asks for.
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
		// Checksums only when asked for: the SDK's default (always) adds
		// a CRC trailer some S3-compatible stores reject.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{cfg: cfg, client: client}, nil
}

// Where implements Store.
func (s *S3) Where() string { return "s3://" + path.Join(s.cfg.Bucket, s.cfg.Prefix) }

func (s *S3) key(k string) string { return s.cfg.Prefix + k }

// Multipart upload: S3 refuses a single PutObject above 5 GiB, and a
// snapshot can be as large as the quota (8 GiB).
const (
	// defaultPartSize is the part size of a multipart upload: 128 parts
	// for 8 GiB.
	defaultPartSize = 64 << 20
	// uploadConcurrency parts are sent at once (read from the file in
	// place: no part is buffered).
	uploadConcurrency = 4
	// maxParts is S3's limit of parts per upload.
	maxParts = 10000
)

// PutFile implements Store. A file larger than the part size goes up as a
// multipart upload (the SDK's upload manager), every part with its sha256,
// which S3 checks on arrival (BadDigest otherwise); a smaller one in one
// PutObject with the file's sha256. Afterwards the stored object's size and
// checksum are read back and compared with the file's: its sha256, or for a
// multipart object the composite sha256 of the parts (the sha256 of the
// parts' sha256s, "-N" for N parts) computed here from the file. Where the
// store keeps no checksum the object is downloaded and hashed.
func (s *S3) PutFile(ctx context.Context, key, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	partSize := s.partSizeFor(fi.Size())
	sums, err := fileSums(f, partSize)
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	in := &s3.PutObjectInput{
		Bucket:            &s.cfg.Bucket,
		Key:               aws.String(s.key(key)),
		Body:              f,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	// A multipart object keeps the composite of its parts' sha256s (a
	// store may keep the whole object's: either proves it); the manager
	// sends each part with its own, and the whole file's only in one put.
	want := []string{sums.full}
	if sums.parts > 1 {
		want = append(want, sums.composite)
	} else {
		in.ChecksumSHA256 = aws.String(sums.full)
	}
	// The upload manager is deprecated for transfermanager, still v0.x;
	// the manager is the stable one that matches service/s3 here.
	//lint:ignore SA1019 see above
	up := manager.NewUploader(s.client, func(u *manager.Uploader) {
		u.PartSize = partSize
		u.Concurrency = uploadConcurrency
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	//lint:ignore SA1019 see above
	if _, err := up.Upload(ctx, in); err != nil {
		return fmt.Errorf("upload %s to %s: %w", key, s.Where(), explainS3(err, s.cfg))
	}
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(s.key(key)), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return fmt.Errorf("check uploaded %s in %s: %w", key, s.Where(), explainS3(err, s.cfg))
	}
	if got := aws.ToInt64(head.ContentLength); got != fi.Size() {
		return fmt.Errorf("uploaded %s in %s has %d bytes, expected %d", key, s.Where(), got, fi.Size())
	}
	if c := aws.ToString(head.ChecksumSHA256); c != "" {
		if !slices.Contains(want, c) {
			return fmt.Errorf("uploaded %s in %s has sha256 %s, expected %s", key, s.Where(), c, want[len(want)-1])
		}
		return nil
	}
	// No checksum kept: read it back.
	got, err := s.hash(ctx, key)
	if err != nil {
		return fmt.Errorf("check uploaded %s in %s: %w", key, s.Where(), err)
	}
	if got != sums.fullHex {
		return fmt.Errorf("uploaded %s in %s has sha256 %s, expected %s", key, s.Where(), got, sums.fullHex)
	}
	return nil
}

// partSizeFor is the part size for a file of size bytes: the configured
// one, larger when S3's limit of parts needs it (the manager would enlarge
// it itself, and the composite checksum must use the same parts).
func (s *S3) partSizeFor(size int64) int64 {
	p := s.partSize
	if p <= 0 {
		p = defaultPartSize
	}
	return max(p, manager.MinUploadPartSize, size/(maxParts-1)+1)
}

// uploadSums are the checksums an upload of a file is compared with, in
// S3's format (base64).
type uploadSums struct {
	full, fullHex string // the file's sha256
	composite     string // sha256 of the parts' sha256s, "-N"
	parts         int
}

// fileSums reads f once for its sha256 and its parts' (f's offset is back
// at 0 afterwards).
func fileSums(f *os.File, partSize int64) (uploadSums, error) {
	full, whole := sha256.New(), sha256.New()
	var u uploadSums
	buf := make([]byte, 1<<20)
	for {
		part := sha256.New()
		n, err := io.CopyBuffer(io.MultiWriter(full, part), io.LimitReader(f, partSize), buf)
		if err != nil {
			return u, fmt.Errorf("read %s: %w", f.Name(), err)
		}
		if n == 0 && u.parts > 0 {
			break
		}
		u.parts++
		whole.Write(part.Sum(nil))
		if n < partSize {
			break
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return u, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	sum := full.Sum(nil)
	u.full, u.fullHex = base64.StdEncoding.EncodeToString(sum), hex.EncodeToString(sum)
	u.composite = fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(whole.Sum(nil)), u.parts)
	return u, nil
}

func (s *S3) hash(ctx context.Context, key string) (string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return "", explainS3(err, s.cfg)
	}
	defer out.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.cfg.Bucket, Key: aws.String(s.key(key)),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	}); err != nil {
		return fmt.Errorf("upload %s to %s: %w", key, s.Where(), explainS3(err, s.cfg))
	}
	return nil
}

// GetFile implements Store.
func (s *S3) GetFile(ctx context.Context, key, dst string) error {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return fmt.Errorf("download %s from %s: %w", key, s.Where(), explainS3(err, s.cfg))
	}
	defer out.Body.Close()
	if err := WriteFileAtomic(ctx, dst, out.Body); err != nil {
		return fmt.Errorf("download %s from %s: %w", key, s.Where(), err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.key(key))})
	if err != nil {
		return nil, fmt.Errorf("download %s from %s: %w", key, s.Where(), explainS3(err, s.cfg))
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("download %s from %s: %w", key, s.Where(), err)
	}
	return b, nil
}

// List implements Store: the keys under the prefix, the prefix removed
// (keys in "sub-folders" of the prefix are not ours and are skipped).
func (s *S3) List(ctx context.Context) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: aws.String(s.cfg.Prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.Where(), explainS3(err, s.cfg))
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), s.cfg.Prefix)
			if k != "" && !strings.Contains(k, "/") {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: aws.String(s.key(key))}); err != nil {
		return fmt.Errorf("delete %s from %s: %w", key, s.Where(), explainS3(err, s.cfg))
	}
	return nil
}

// explainS3 turns the SDK's errors into what an operator can act on.
func explainS3(err error, cfg S3Config) error {
	var nsb *types.NoSuchBucket
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var api smithy.APIError
	msg := err.Error()
	switch {
	case errors.As(err, &nsk), errors.As(err, &nf):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &nsb), errors.As(err, &api) && api.ErrorCode() == "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist (fix: create it or correct backup.s3.bucket): %w", cfg.Bucket, err)
	case errors.As(err, &api) && (api.ErrorCode() == "AccessDenied" || api.ErrorCode() == "InvalidAccessKeyId" || api.ErrorCode() == "SignatureDoesNotMatch"):
		return fmt.Errorf("access to bucket %q refused (fix: give the instance role the bucket policy in docs/deploy-aws.md): %w", cfg.Bucket, err)
	case strings.Contains(msg, "failed to retrieve credentials") || strings.Contains(msg, "no EC2 IMDS role found") || strings.Contains(msg, "get credentials"):
		return fmt.Errorf("no AWS credentials (fix: attach an instance profile to the instance; the agent uses the default chain: environment, shared config, instance role through IMDS): %w", err)
	case strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "i/o timeout") || strings.Contains(msg, "dial tcp"):
		where := cfg.Endpoint
		if where == "" {
			where = "S3"
		}
		return fmt.Errorf("%s unreachable (fix: check backup.s3.endpoint/region and the node's route to S3): %w", where, err)
	}
	return err
}
