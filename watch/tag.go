package watch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TagKey is the environment variable respawnd sets in every program it
// starts, so that a later respawnd can prove the process is its own.
const TagKey = "RESPAWND_INSTANCE"

// tagVersion prefixes every tag value; a tag of another version never
// verifies.
const tagVersion = "v1"

// TagWindow is how many clock ticks (USER_HZ, 1/100 s) may pass between the
// moment a tag is made, right before the fork, and the start time the kernel
// records for the process. A process started later, such as a child that the
// program forked and that inherited the tag, does not carry a valid tag for
// itself.
const TagWindow = 500

// macLen is the length in bytes of the tag's truncated HMAC-SHA256.
const macLen = 16

// Tagger makes and checks instance tags. A tag binds a program name, the
// instance's generation and the clock tick of its start to this boot and to
// a secret that only the daemon can read (in its state directory), so that
// no other user can forge one: reading a program's environment needs that
// program's own uid, and even then a copied tag is only valid for a process
// that started within TagWindow of the original.
//
// A Tagger is safe for concurrent use.
type Tagger struct {
	secret []byte
	bootID string
}

// NewTagger returns a Tagger for secret (at least 16 bytes) and the boot id
// of the running kernel (see BootID).
func NewTagger(secret []byte, bootID string) (*Tagger, error) {
	if len(secret) < 16 {
		return nil, errors.New("watch: tag secret shorter than 16 bytes")
	}
	if bootID == "" {
		return nil, errors.New("watch: empty boot id")
	}
	return &Tagger{secret: append([]byte(nil), secret...), bootID: bootID}, nil
}

// Tag is the decoded content of a tag.
type Tag struct {
	Program    string
	Generation uint64
	// Config is a digest of the program definition the instance was
	// started from (hex, no colon), so that an instance found by its tag
	// alone is restarted onto a definition that changed meanwhile.
	Config string
	// Ticks is the clock tick since boot (CLOCK_BOOTTIME in USER_HZ, the
	// unit of Identity.StartTime) read right before the fork.
	Ticks uint64
}

// Entry returns the KEY=value environment entry for t.
func (tg *Tagger) Entry(t Tag) string {
	return TagKey + "=" + tagVersion + ":" + t.Program + ":" + strconv.FormatUint(t.Generation, 10) + ":" +
		strconv.FormatUint(t.Ticks, 10) + ":" + t.Config + ":" + hex.EncodeToString(tg.mac(t))
}

// Prefix is what the value of every tag of program starts with, for
// scanning; for program "" it is what every tag of this version starts
// with.
func Prefix(program string) string {
	if program == "" {
		return tagVersion + ":"
	}
	return tagVersion + ":" + program + ":"
}

// Verify decodes a tag value (without the KEY=) and checks its MAC. It does
// not check the process: see Valid.
func (tg *Tagger) Verify(value string) (Tag, error) {
	parts := strings.Split(value, ":")
	if len(parts) != 6 || parts[0] != tagVersion {
		return Tag{}, fmt.Errorf("%w: not a %s tag", ErrBadTag, tagVersion)
	}
	var t Tag
	var err error
	t.Program = parts[1]
	if t.Generation, err = strconv.ParseUint(parts[2], 10, 64); err != nil {
		return Tag{}, fmt.Errorf("%w: generation: %w", ErrBadTag, err)
	}
	if t.Ticks, err = strconv.ParseUint(parts[3], 10, 64); err != nil {
		return Tag{}, fmt.Errorf("%w: ticks: %w", ErrBadTag, err)
	}
	t.Config = parts[4]
	got, err := hex.DecodeString(parts[5])
	if err != nil || len(got) != macLen {
		return Tag{}, fmt.Errorf("%w: malformed mac", ErrBadTag)
	}
	if !hmac.Equal(got, tg.mac(t)) {
		return Tag{}, fmt.Errorf("%w: mac does not verify (another daemon's, another boot's, or forged)", ErrBadTag)
	}
	// Only the exact text this daemon writes: no leading zeros, no
	// upper-case hex.
	if tg.Entry(t) != TagKey+"="+value {
		return Tag{}, fmt.Errorf("%w: not in canonical form", ErrBadTag)
	}
	return t, nil
}

// Valid checks that value is a tag of this daemon for program, made for the
// process with start time startTicks: the MAC verifies (so this daemon made
// it, in this boot) and the process started within TagWindow after the tag
// was made (so it is the process the tag was made for, not a later child
// that inherited it).
func (tg *Tagger) Valid(value, program string, startTicks uint64) (Tag, error) {
	t, err := tg.Verify(value)
	if err != nil {
		return Tag{}, err
	}
	if t.Program != program {
		return Tag{}, fmt.Errorf("%w: made for program %q, not %q", ErrBadTag, t.Program, program)
	}
	if startTicks < t.Ticks || startTicks-t.Ticks > TagWindow {
		return Tag{}, fmt.Errorf("%w: process started at tick %d, the tag was made at tick %d", ErrBadTag, startTicks, t.Ticks)
	}
	return t, nil
}

func (tg *Tagger) mac(t Tag) []byte {
	m := hmac.New(sha256.New, tg.secret)
	for _, s := range []string{"respawnd instance tag " + tagVersion, tg.bootID, t.Program, strconv.FormatUint(t.Generation, 10), strconv.FormatUint(t.Ticks, 10), t.Config} {
		m.Write([]byte(s))
		m.Write([]byte{0})
	}
	return m.Sum(nil)[:macLen]
}
