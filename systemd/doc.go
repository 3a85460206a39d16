// Package systemd is etcd-agent's side of the systemd service contract: the
// sd_notify messages it sends (READY=1 only once the local member is healthy,
// STATUS= lines, WATCHDOG=1 keep-alives, STOPPING=1 on shutdown), the watchdog
// interval it derives from WATCHDOG_USEC, and the etcd-agent.service unit file
// it installs with.
//
// Nothing here reads the process environment: main reads NOTIFY_SOCKET,
// WATCHDOG_USEC and WATCHDOG_PID once and passes the values in.
package systemd
