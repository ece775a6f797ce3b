//go:build linux && !386 && !arm

package restart

import "golang.org/x/sys/unix"

// sysSetgroups is setgroups with 32-bit gids.
const sysSetgroups = unix.SYS_SETGROUPS
