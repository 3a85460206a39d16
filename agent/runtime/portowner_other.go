//go:build !linux

package runtime

import "net/netip"

func findPortOwner(netip.AddrPort) (string, bool) { return "", false }
