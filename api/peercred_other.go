//go:build !linux

package api

// peerUIDOf is unsupported: without peer credentials every peer is refused.
func peerUIDOf(int) (int, error) { return -1, errUnsupported }
