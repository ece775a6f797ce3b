package testenv

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setComm sets the process name (/proc/PID/comm). PR_SET_NAME names the
// calling thread, and the process's comm is its main thread's, so this
// works where the main goroutine runs on the main thread (a test binary
// that imports package restart, whose init locks it there); it checks.
func setComm(name string) error {
	b, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(b)), 0, 0, 0); err != nil {
		return fmt.Errorf("setting the process name: %w", err)
	}
	got, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(got)) != name {
		return fmt.Errorf("process name is %q, not %q: not on the main thread", strings.TrimSpace(string(got)), name)
	}
	return nil
}
