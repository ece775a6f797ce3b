package restart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The shim protocol. The launcher starts ShimPath with argv
// [ShimPath, shimMarker, JSON shimSpec], the program's environment exactly
// as given, and the write end of a report pipe as fd 3. The shim marks fd 3
// close-on-exec, joins each cgroup.procs file, drops to the program's
// credentials, changes directory and execs the program. On failure it writes
// one JSON shimReport to fd 3 and exits; on success the exec closes fd 3, so
// the launcher reading end of file with no data knows the program exec'd.
// Nothing of the protocol reaches the program: argv is replaced by the
// program's own, the environment is untouched and fd 3 is closed.
const (
	shimMarker   = "respawnd-restart-shim"
	shimReportFD = 3
	// shimExitCode is the shim's exit code after a reported failure.
	shimExitCode = 127
	// maxShimReport bounds what the launcher reads from the report pipe.
	maxShimReport = 4 << 10
)

type shimSpec struct {
	Path  string    `json:"path"`
	Argv  []string  `json:"argv"`
	Dir   string    `json:"dir,omitempty"`
	Procs []string  `json:"procs"`
	Cred  *shimCred `json:"cred,omitempty"`
}

type shimCred struct {
	UID       uint32   `json:"uid"`
	GID       uint32   `json:"gid"`
	Groups    []uint32 `json:"groups,omitempty"`
	SetGroups bool     `json:"set_groups"`
}

type shimReport struct {
	Op      string `json:"op"`
	Syscall string `json:"syscall,omitempty"`
	Path    string `json:"path,omitempty"`
	Errno   int    `json:"errno,omitempty"`
	Msg     string `json:"msg,omitempty"`
}

// newShimSpec describes what the shim does for a Command whose program is
// at path.
func newShimSpec(c *Command, path string, cred *syscall.Credential) shimSpec {
	s := shimSpec{Path: path, Argv: c.Argv, Dir: c.Dir, Procs: c.CgroupProcs}
	if cred != nil {
		s.Cred = &shimCred{UID: cred.Uid, GID: cred.Gid, Groups: cred.Groups, SetGroups: !cred.NoSetGroups}
	}
	return s
}

// RunShimIfRequested joins the cgroups and execs the program when this
// process was started as the launcher's shim; otherwise it returns at once.
// A binary used as LauncherConfig.ShimPath (respawnd itself by default)
// must call it first thing in main, and test binaries first thing in
// TestMain. When it does not return, the process has become the program or
// has exited after reporting a failure to the launcher.
func RunShimIfRequested() {
	if len(os.Args) != 3 || os.Args[1] != shimMarker {
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(shimReportFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		// Not started by a launcher: there is nobody to report to.
		fmt.Fprintln(os.Stderr, "restart: shim started without a report pipe")
		os.Exit(shimExitCode)
	}
	os.Exit(runShim(os.Args[2]))
}

// runShim does the work of the shim and returns only on failure, after
// reporting it.
func runShim(arg string) int {
	// The program must not inherit the report pipe, and the launcher must see
	// end of file as soon as exec succeeds.
	unix.CloseOnExec(shimReportFD)
	var s shimSpec
	if err := json.Unmarshal([]byte(arg), &s); err != nil {
		return shimFail(shimReport{Op: OpExec, Msg: "decoding shim instructions: " + err.Error()})
	}
	pid := strconv.AppendInt(nil, int64(os.Getpid()), 10)
	for _, procs := range s.Procs {
		if sc, err := joinCgroup(procs, pid); err != nil {
			return shimFail(errnoReport(OpJoinCgroup, sc, procs, err))
		}
	}
	if c := s.Cred; c != nil {
		// The same order as the runtime's fork path: groups, gid, uid. The
		// syscall package applies each to every thread.
		if c.SetGroups {
			groups := make([]int, len(c.Groups))
			for i, g := range c.Groups {
				groups[i] = int(g)
			}
			if err := syscall.Setgroups(groups); err != nil {
				return shimFail(errnoReport(OpSetCredentials, "setgroups", "", err))
			}
		}
		if err := syscall.Setgid(int(c.GID)); err != nil {
			return shimFail(errnoReport(OpSetCredentials, "setgid", "", err))
		}
		if err := syscall.Setuid(int(c.UID)); err != nil {
			return shimFail(errnoReport(OpSetCredentials, "setuid", "", err))
		}
	}
	if s.Dir != "" {
		if err := unix.Chdir(s.Dir); err != nil {
			return shimFail(errnoReport(OpChdir, "chdir", s.Dir, err))
		}
	}
	err := unix.Exec(s.Path, s.Argv, os.Environ())
	return shimFail(errnoReport(OpExec, "execve", s.Path, err))
}

// joinCgroup writes pid to a cgroup.procs file and returns the name of the
// failed syscall with the error.
func joinCgroup(procs string, pid []byte) (string, error) {
	fd, err := unix.Open(procs, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "open", err
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, pid); err != nil {
		return "write", err
	}
	return "", nil
}

func errnoReport(op, sc, path string, err error) shimReport {
	r := shimReport{Op: op, Syscall: sc, Path: path}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		r.Errno = int(errno)
	} else {
		r.Msg = err.Error()
	}
	return r
}

func shimFail(r shimReport) int {
	b, _ := json.Marshal(r)
	_, _ = unix.Write(shimReportFD, b)
	return shimExitCode
}

// readShimReport reads the report pipe to end of file. It returns nil when
// the shim exec'd the program, and the reported failure otherwise.
func readShimReport(program string, r io.Reader) *StartError {
	b, err := io.ReadAll(io.LimitReader(r, maxShimReport))
	if err != nil {
		return &StartError{Program: program, Op: OpExec, Err: fmt.Errorf("reading shim report: %w", err)}
	}
	if len(b) == 0 {
		return nil
	}
	var rep shimReport
	if err := json.Unmarshal(b, &rep); err != nil || rep.Op == "" {
		return &StartError{Program: program, Op: OpExec, Err: fmt.Errorf("%w: %q", ErrShimReport, b)}
	}
	var cause error
	switch {
	case rep.Errno != 0 && rep.Path != "":
		cause = &os.PathError{Op: rep.Syscall, Path: rep.Path, Err: syscall.Errno(rep.Errno)}
	case rep.Errno != 0:
		cause = os.NewSyscallError(rep.Syscall, syscall.Errno(rep.Errno))
	default:
		cause = fmt.Errorf("%w: %s", ErrShimReport, rep.Msg)
	}
	return &StartError{Program: program, Op: rep.Op, Err: cause}
}
