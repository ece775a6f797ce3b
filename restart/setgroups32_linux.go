//go:build linux && (386 || arm)

package restart

import "golang.org/x/sys/unix"

// sysSetgroups is setgroups with 32-bit gids; SYS_SETGROUPS takes 16-bit
// ones on these architectures.
const sysSetgroups = unix.SYS_SETGROUPS32
