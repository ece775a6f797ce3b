package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"

	"github.com/alecthomas/units"
	"golang.org/x/sys/unix"
)

// parseSize parses a byte count: a plain integer, or a number with an IEC
// unit (256MiB, 1GiB, or 256Mi as Kubernetes writes it) or an SI unit (512MB,
// or 512M, 1G, 100k). The units themselves are left to
// github.com/alecthomas/units; parseSize only supplies the "B" that the short
// forms leave out.
func parseSize(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	invalid := fmt.Errorf("invalid size %q (want bytes or a unit such as 256MiB, 1GiB, 512M or 1G)", truncate(s))
	t := s
	if t == "" || strings.ContainsAny(t, " \t") {
		return 0, invalid
	}
	if t[len(t)-1] != 'B' {
		t += "B"
	}
	n, err := units.ParseStrictBytes(t)
	if err != nil {
		return 0, invalid
	}
	if (n < 0 || n == math.MaxInt64) && !strings.HasPrefix(s, "-") {
		// The library computes in float64, and converting 2^63 back to
		// int64 wraps on some CPUs and saturates on others.
		return 0, fmt.Errorf("size %q is too large", truncate(s))
	}
	return n, nil
}

// parseSignal parses a signal name, with or without the SIG prefix and in
// any case, or a signal number.
func parseSignal(s string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		sig := syscall.Signal(n)
		return sig, n == int(sig) && validSignal(sig)
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	return sig, sig != 0
}
