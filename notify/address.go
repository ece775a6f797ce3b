package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxAddress bounds the length of a NOTIFY_SOCKET value in bytes, the '@'
// included. The '@' stands for the NUL that starts an abstract name in
// sun_path, which is 108 bytes (unix(7)); one byte is left over for the
// terminating NUL that clients copying NOTIFY_SOCKET as a C string write.
const MaxAddress = 107

// addressPrefix starts every name, so that respawnd's sockets are easy to
// tell apart in ss -x and /proc/net/unix.
const addressPrefix = "@respawnd/"

// Address returns the NOTIFY_SOCKET value of program in namespace:
// "@respawnd/<namespace>/<program>" when that fits in MaxAddress bytes.
// Otherwise it is "@respawnd/<hash>/<program>", cut to MaxAddress bytes,
// where hash is 32 hexadecimal digits of the SHA-256 of namespace and
// program: stable across restarts of respawnd (a program that outlives
// one keeps a valid NOTIFY_SOCKET), distinct for every namespace and
// program, and with a program name of up to 64 bytes still readable whole.
// Neither may be empty or contain a NUL or '/'.
func Address(namespace, program string) (string, error) {
	if err := checkName("namespace", namespace); err != nil {
		return "", err
	}
	if err := checkName("program name", program); err != nil {
		return "", err
	}
	if a := addressPrefix + namespace + "/" + program; len(a) <= MaxAddress {
		return a, nil
	}
	sum := sha256.Sum256([]byte(namespace + "\x00" + program))
	a := addressPrefix + hex.EncodeToString(sum[:16]) + "/" + program
	if len(a) > MaxAddress {
		a = a[:MaxAddress]
		// Cut at a character boundary, so the value stays valid UTF-8 in
		// logs and environments.
		for range utf8.UTFMax - 1 {
			if r, size := utf8.DecodeLastRuneInString(a); r != utf8.RuneError || size != 1 {
				break
			}
			a = a[:len(a)-1]
		}
	}
	return a, nil
}

func checkName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w %s: empty", ErrInvalid, what)
	case strings.ContainsAny(s, "\x00/"):
		return fmt.Errorf("%w %s %q: contains a NUL or '/'", ErrInvalid, what, s)
	}
	return nil
}
