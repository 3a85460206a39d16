package podman

// rlimitNproc is RLIMIT_NPROC, which package syscall does not name on Linux.
const rlimitNproc = 6
