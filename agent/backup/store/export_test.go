package store

// SetPartSize sets the multipart upload's part size of s (at least 5 MiB,
// S3's minimum), so a test forces several parts with a small object.
func SetPartSize(s *S3, n int64) { s.partSize = n }
