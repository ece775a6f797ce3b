package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/alecthomas/units"
	"golang.org/x/sys/unix"
)

// sizeError is the error of parseSize: a string that is no size at all, or
// one that is too large.
type sizeError struct {
	s        string
	tooLarge bool
}

func (e *sizeError) Error() string {
	if e.tooLarge {
		return fmt.Sprintf("size %q is too large", truncate(e.s))
	}
	return fmt.Sprintf("invalid size %q (want bytes or a unit such as 256MiB, 1GiB, 512M or 1G)", truncate(e.s))
}

// parseSize parses a byte count: a plain integer, or a number with an IEC
// unit (256MiB, 1GiB, or 256Mi as Kubernetes writes it) or an SI unit (512MB,
// or 512M, 1G, 100k). The units themselves are left to
// github.com/alecthomas/units; parseSize only supplies the "B" that the short
// forms leave out. Its errors are *sizeError.
func parseSize(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	invalid := &sizeError{s: s}
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
		return 0, &sizeError{s: s, tooLarge: true}
	}
	return n, nil
}

// sizeText writes n in the file's syntax: with the largest IEC unit from
// KiB to EiB that divides it, else in plain bytes.
func sizeText(n int64) string {
	if n > 0 {
		for i, unit := range []string{"EiB", "PiB", "TiB", "GiB", "MiB", "KiB"} {
			if shift := 10 * (6 - i); n%(1<<shift) == 0 {
				return strconv.FormatInt(n>>shift, 10) + unit
			}
		}
	}
	return strconv.FormatInt(n, 10)
}

// percentRE is the syntax of a percentage: a decimal number without an
// exponent, then a percent sign. The sign is accepted so that "-5%" is
// refused for its value, not its spelling.
var percentRE = regexp.MustCompile(`^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)%$`)

// ParseThreshold reads a memory threshold as the configuration file writes
// it: a size in the syntax of memory.max ("460MiB", "512M", "4096") or a
// percentage of memory.max ("90%", "12.5%"). A percentage must be above 0%
// and at most 100%. A size is not checked against MinMemory or memory.max
// here; Validate does that. "0" is the zero Threshold, which Validate
// refuses wherever a threshold is given.
func ParseThreshold(s string) (Threshold, error) {
	if strings.HasSuffix(s, "%") {
		if !percentRE.MatchString(s) {
			return Threshold{}, fmt.Errorf("invalid percentage %q (want a number such as 90%% or 12.5%%)", truncate(s))
		}
		// The syntax is checked, so the only error left is a number too
		// large for a float64; it is +Inf then, and refused below.
		p, _ := strconv.ParseFloat(s[:len(s)-1], 64)
		if !(p > 0 && p <= 100) {
			return Threshold{}, fmt.Errorf("percentage must be above 0%% and at most 100%%, not %s", truncate(s))
		}
		return Threshold{Percent: p}, nil
	}
	n, err := parseSize(s)
	if se := (*sizeError)(nil); errors.As(err, &se) && !se.tooLarge {
		return Threshold{}, fmt.Errorf("invalid threshold %q (want a size such as 460MiB or 512M, or a percentage of memory.max such as 90%%)", truncate(s))
	}
	if err != nil {
		return Threshold{}, err
	}
	return Threshold{Bytes: n}, nil
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
