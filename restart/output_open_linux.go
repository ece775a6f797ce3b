package restart

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/securefs"
)

// outputFlags and outputPerm are how a program's output file is opened:
// appended to, created if missing. The mode is less the umask.
const (
	outputFlags = os.O_WRONLY | os.O_APPEND | os.O_CREATE
	outputPerm  = 0o640
)

// openOutput opens a program's output file with the program's own
// credentials. With cred nil (the program keeps respawnd's) it resolves
// path trusting root and respawnd's effective uid. Otherwise it switches
// the filesystem uid, gid and groups of one thread to cred for the open, so
// that the kernel checks the program user's permissions on every component
// and a created file belongs to that user, and it trusts root and the
// program's uid. Either way the path is resolved by securefs's rules:
// nothing of another user on the way, a regular file with one link or a
// character device such as /dev/null at the end.
func openOutput(path string, cred *syscall.Credential) (*os.File, error) {
	if cred == nil {
		p := securefs.Policy{Trusted: []int{0}, CharDevices: true}
		if euid := os.Geteuid(); euid != 0 {
			p.Trusted = append(p.Trusted, euid)
		}
		return securefs.OpenFile(path, outputFlags, outputPerm, p)
	}
	p := securefs.Policy{Trusted: []int{0, int(cred.Uid)}, CharDevices: true}
	var f *os.File
	err := asFilesystemUser(cred, func() error {
		var err error
		f, err = securefs.OpenFile(path, outputFlags, outputPerm, p)
		return err
	})
	if err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, err
	}
	return f, nil
}

// errRestoreCredentials is wrapped when a thread's filesystem credentials
// could not be switched back; that thread is retired.
var errRestoreCredentials = errors.New("restart: restoring respawnd's filesystem credentials")

// asFilesystemUser runs fn on a thread whose filesystem uid, gid and
// supplementary groups are cred's, then switches them back.
//
// The switch is per thread: setfsuid and setfsgid act on the calling
// thread only, and setgroups is called as a raw system call because
// syscall.Setgroups changes every thread of the process. When the
// filesystem uid goes from 0 to another uid the kernel also drops
// CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_CHOWN and the
// other filesystem capabilities from the thread's effective set, and
// raises them again on the way back (capabilities(7), "Effect of user ID
// changes on capabilities"), so fn runs with the user's permissions only.
// The goroutine is locked to its thread throughout; the Go runtime creates
// new threads from a template thread while a goroutine is locked, so none
// inherits the switched credentials. When switching back fails the
// goroutine ends still locked and the runtime retires the thread, so no
// other code ever runs with the program's credentials.
func asFilesystemUser(cred *syscall.Credential, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored, err := withThreadCredential(cred, fn)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// withThreadCredential switches the calling thread, which must be locked,
// to cred, runs fn and switches back. restored is false when the thread's
// credentials could not be put back.
func withThreadCredential(cred *syscall.Credential, fn func() error) (restored bool, err error) {
	var oldGroups []uint32
	if !cred.NoSetGroups {
		gs, err := unix.Getgroups()
		if err != nil {
			return true, fmt.Errorf("reading respawnd's groups: %w", err)
		}
		oldGroups = make([]uint32, len(gs))
		for i, g := range gs {
			oldGroups[i] = uint32(g)
		}
		if err := setThreadGroups(cred.Groups); err != nil {
			return true, fmt.Errorf("switching to the groups of uid %d: %w", cred.Uid, err)
		}
	}
	restore := func(oldUID, oldGID int) bool {
		ok := setFSUID(oldUID) && setFSGID(oldGID)
		if ok && !cred.NoSetGroups {
			ok = setThreadGroups(oldGroups) == nil
		}
		return ok
	}
	// setfsuid and setfsgid return the previous id whether they succeed or
	// not; a second call tells whether the first took effect.
	oldGID, _ := unix.SetfsgidRetGid(int(cred.Gid))
	oldUID := -1
	switched := setFSGID(int(cred.Gid))
	if switched {
		oldUID, _ = unix.SetfsuidRetUid(int(cred.Uid))
		switched = setFSUID(int(cred.Uid))
	}
	if !switched {
		if oldUID < 0 {
			oldUID, _ = unix.SetfsuidRetUid(-1) // -1 changes nothing, returns the current fsuid
		}
		if !restore(oldUID, oldGID) {
			return false, fmt.Errorf("%w after a failed switch to uid %d gid %d", errRestoreCredentials, cred.Uid, cred.Gid)
		}
		return true, fmt.Errorf("switching the filesystem ids to uid %d gid %d failed (respawnd needs CAP_SETUID and CAP_SETGID)", cred.Uid, cred.Gid)
	}
	err = fn()
	if !restore(oldUID, oldGID) {
		return false, errors.Join(err, errRestoreCredentials)
	}
	return true, err
}

// setFSUID sets the thread's filesystem uid and reports whether it is now
// uid.
func setFSUID(uid int) bool {
	_, _ = unix.SetfsuidRetUid(uid)
	cur, _ := unix.SetfsuidRetUid(uid)
	return cur == uid
}

// setFSGID sets the thread's filesystem gid and reports whether it is now
// gid.
func setFSGID(gid int) bool {
	_, _ = unix.SetfsgidRetGid(gid)
	cur, _ := unix.SetfsgidRetGid(gid)
	return cur == gid
}

// setThreadGroups sets the supplementary groups of the calling thread only.
func setThreadGroups(gids []uint32) error {
	var p unsafe.Pointer
	if len(gids) > 0 {
		p = unsafe.Pointer(&gids[0])
	}
	if _, _, errno := unix.RawSyscall(sysSetgroups, uintptr(len(gids)), uintptr(p), 0); errno != 0 {
		return errno
	}
	return nil
}
