package hook

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sealedRecord returns record in a memfd, at offset 0, sealed so that
// nobody can change it (F_SEAL_WRITE, F_SEAL_GROW, F_SEAL_SHRINK) or the
// seals (F_SEAL_SEAL), nor execute it (MFD_NOEXEC_SEAL, Linux 6.3, where
// available). A hook inherits it as fd 3 and opens /proc/self/fd/3 (the
// same as /dev/fd/3 where that link exists; minimal systems lack it): a
// memfd can be opened again through /proc by the process that holds it,
// whatever its user, which a file in respawnd's root-only state directory
// cannot.
func sealedRecord(record []byte) (*os.File, error) {
	const name = "respawnd-exit-record"
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) {
		// Before Linux 6.3.
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the record's memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(record); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the record's memfd: %w", err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing the record's memfd: %w", err)
	}
	// A hook reading fd 3 itself (cat <&3) shares this offset.
	if _, err := f.Seek(0, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("rewinding the record's memfd: %w", err)
	}
	return f, nil
}
