package schedule

// SnapshotSource and VerifyHost are exported for the tests.
var (
	SnapshotSource = snapshotSource
	VerifyHost     = verifyHost
)
