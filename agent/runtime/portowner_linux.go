package runtime

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// findPortOwner names the process listening on ap ("pid 123 (etcd)") from
// /proc. It finds only what this process may see: its own user's processes,
// or all as root.
func findPortOwner(ap netip.AddrPort) (string, bool) {
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listeningInodes(table, ap, inodes)
	}
	if len(inodes) == 0 {
		return "", false
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return "", false
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join("/proc", p.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				comm, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "comm"))
				return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(string(comm))), true
			}
		}
	}
	return "", false
}

// listeningInodes adds the inodes of LISTEN sockets on ap's port whose local
// address is ap's address or the wildcard.
func listeningInodes(table string, ap netip.AddrPort, out map[string]bool) {
	f, err := os.Open(table)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" { // 0A = TCP_LISTEN
			continue
		}
		addr, port, ok := parseProcAddr(fields[1])
		if !ok || port != ap.Port() {
			continue
		}
		if addr.IsUnspecified() || addr.Unmap() == ap.Addr().Unmap() {
			out[fields[9]] = true
		}
	}
}

// parseProcAddr decodes "0100007F:0950" (little-endian words) from /proc/net/tcp*.
func parseProcAddr(s string) (netip.Addr, uint16, bool) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	var b []byte
	for i := 0; i+8 <= len(hexAddr); i += 8 {
		w, err := strconv.ParseUint(hexAddr[i:i+8], 16, 32)
		if err != nil {
			return netip.Addr{}, 0, false
		}
		b = append(b, byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	addr, ok := netip.AddrFromSlice(b)
	return addr, uint16(port), ok
}
