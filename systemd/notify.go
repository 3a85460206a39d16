package systemd

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// sendTimeout bounds one datagram write. A unix datagram write blocks while
// the receiver's queue is full; a wedged service manager must not wedge the
// agent's control loop with it.
const sendTimeout = 2 * time.Second

// Notifier sends sd_notify datagrams to the service manager's notify socket.
//
// Without a socket (the agent runs outside systemd, or under Type=simple)
// every method is a no-op that returns nil. A failed send returns an error
// every time but is logged only once until a send succeeds again, so a
// missing socket does not flood the journal at the watchdog rate.
//
// A Notifier is safe for concurrent use.
type Notifier struct {
	addr   *net.UnixAddr // nil: no socket, every call is a no-op
	logger *slog.Logger

	mu         sync.Mutex
	lastStatus string
	haveStatus bool // lastStatus was delivered
	failing    bool // a failure has been logged and no send has succeeded since
}

// NewNotifier returns a Notifier for the notify socket at socketPath, which is
// usually the value of NOTIFY_SOCKET. A path starting with '@' names a socket
// in the abstract namespace. An empty socketPath gives a no-op Notifier. A nil
// logger discards log output.
func NewNotifier(socketPath string, logger *slog.Logger) *Notifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{logger: logger}
	if socketPath != "" {
		n.addr = &net.UnixAddr{Name: socketPath, Net: "unixgram"}
	}
	return n
}

// Enabled reports whether the Notifier has a socket to send to.
func (n *Notifier) Enabled() bool { return n.addr != nil }

// Ready tells systemd that start-up is finished, together with a STATUS line
// when status is not empty: "READY=1\nSTATUS=<status>".
func (n *Notifier) Ready(status string) error {
	return n.notify(daemon.SdNotifyReady, status, false)
}

// Status sets the one-line status systemctl shows: "STATUS=<status>". A status
// identical to the last one delivered, or an empty one, is not sent.
func (n *Notifier) Status(status string) error {
	return n.notify("", status, true)
}

// Watchdog tells systemd the control loop is alive: "WATCHDOG=1".
func (n *Notifier) Watchdog() error {
	return n.notify(daemon.SdNotifyWatchdog, "", false)
}

// Stopping tells systemd that shutdown has begun, together with a STATUS line
// when status is not empty: "STOPPING=1\nSTATUS=<status>".
func (n *Notifier) Stopping(status string) error {
	return n.notify(daemon.SdNotifyStopping, status, false)
}

// ExtendTimeout asks systemd to extend the current start-up, runtime or
// shutdown timeout so that it ends no sooner than d from now:
// "EXTEND_TIMEOUT_USEC=<d in µs>". It has no effect when the timeout is already
// further away (for example TimeoutStartSec=infinity).
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	return n.notify("EXTEND_TIMEOUT_USEC="+strconv.FormatInt(d.Microseconds(), 10), "", false)
}

// Reloading tells systemd that the agent is reloading its configuration:
// "RELOADING=1\nMONOTONIC_USEC=<now>" (systemd 253 and later require the
// timestamp). Call Ready when the reload is done.
func (n *Notifier) Reloading() error {
	state := daemon.SdNotifyReloading
	if ts := strings.TrimSuffix(daemon.SdNotifyMonotonicUsec(), "\n"); ts != "" {
		state += "\n" + ts
	}
	return n.notify(state, "", false)
}

// notify sends state followed by a STATUS line for a non-empty status. With
// dedupe, a status equal to the last one delivered is not sent.
func (n *Notifier) notify(state, status string, dedupe bool) error {
	if n.addr == nil {
		return nil
	}
	status = oneLine(status)

	n.mu.Lock()
	defer n.mu.Unlock()
	if dedupe && (status == "" || n.haveStatus && status == n.lastStatus) {
		return nil
	}
	var lines []string
	if state != "" {
		lines = append(lines, state)
	}
	if status != "" {
		lines = append(lines, "STATUS="+status)
	}
	if err := n.send(strings.Join(lines, "\n")); err != nil {
		if !n.failing {
			n.failing = true
			n.logger.Warn("sd_notify failed; further failures are not logged until a send succeeds",
				"socket", n.addr.Name, "err", err)
		}
		return err
	}
	if n.failing {
		n.failing = false
		n.logger.Info("sd_notify recovered", "socket", n.addr.Name)
	}
	if status != "" {
		n.lastStatus, n.haveStatus = status, true
	}
	return nil
}

// send writes one datagram to the notify socket.
func (n *Notifier) send(msg string) error {
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("dial notify socket %s: %w", n.addr.Name, err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("set deadline on notify socket %s: %w", n.addr.Name, err)
	}
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("write notify socket %s: %w", n.addr.Name, err)
	}
	return nil
}

// oneLine keeps a status to one line: the protocol is newline-separated
// KEY=VALUE pairs, so an embedded newline would start a bogus assignment.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
