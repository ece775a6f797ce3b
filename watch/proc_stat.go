package watch

import (
	"bytes"
	"fmt"
	"strconv"
)

// statFields are the few fields of /proc/PID/stat that liveness checks and
// exit statuses need. prometheus/procfs parses the file into ProcStat but
// stops before field 52 (exit_code), and liveness checks of many watched
// processes are the hot path of the rescan mechanism, so this small parser
// reads only what it needs.
type statFields struct {
	State     byte
	PPID      int
	PGRP      int
	Session   int
	Flags     uint64
	StartTime uint64
	// ExitCode is field 52, the wait(2) status of a dead thread-group
	// leader (since Linux 3.5); HasExitCode is false on older kernels.
	ExitCode    uint32
	HasExitCode bool
}

// parseStat parses the content of /proc/PID/stat. The comm (field 2) is in
// parentheses and may itself contain spaces and parentheses, so the fields
// after it are found from the last ')' in the line (proc(5)).
func parseStat(data []byte) (statFields, error) {
	r := bytes.LastIndexByte(data, ')')
	if r < 0 || r+2 > len(data) {
		return statFields{}, fmt.Errorf("parsing stat: no comm in %q", truncate(data))
	}
	// fields[0] is field 3 (state); field n is fields[n-3].
	fields := bytes.Fields(data[r+1:])
	if len(fields) < 22-2 {
		return statFields{}, fmt.Errorf("parsing stat: %d fields after comm, want at least 20", len(fields))
	}
	var s statFields
	if len(fields[0]) != 1 {
		return statFields{}, fmt.Errorf("parsing stat: bad state %q", fields[0])
	}
	s.State = fields[0][0]
	ppid, err := strconv.Atoi(string(fields[4-3]))
	if err != nil {
		return statFields{}, fmt.Errorf("parsing stat: parent: %w", err)
	}
	s.PPID = ppid
	pgrp, err := strconv.Atoi(string(fields[5-3]))
	if err != nil {
		return statFields{}, fmt.Errorf("parsing stat: process group: %w", err)
	}
	sid, err := strconv.Atoi(string(fields[6-3]))
	if err != nil {
		return statFields{}, fmt.Errorf("parsing stat: session: %w", err)
	}
	flags, err := strconv.ParseUint(string(fields[9-3]), 10, 64)
	if err != nil {
		return statFields{}, fmt.Errorf("parsing stat: flags: %w", err)
	}
	s.PGRP, s.Session, s.Flags = pgrp, sid, flags
	st, err := strconv.ParseUint(string(fields[22-3]), 10, 64)
	if err != nil {
		return statFields{}, fmt.Errorf("parsing stat: start time: %w", err)
	}
	s.StartTime = st
	if len(fields) >= 52-2 {
		code, err := strconv.ParseInt(string(fields[52-3]), 10, 32)
		if err != nil {
			return statFields{}, fmt.Errorf("parsing stat: exit code: %w", err)
		}
		s.ExitCode, s.HasExitCode = uint32(code), true
	}
	return s, nil
}

// dead reports whether the state letter means the process has exited: Z is
// a zombie waiting to be reaped, X (and x on some kernels) a task being torn
// down.
func deadState(state byte) bool { return state == 'Z' || state == 'X' || state == 'x' }

// pfKthread is PF_KTHREAD in the flags word (field 9) of /proc/PID/stat
// (include/linux/sched.h). It marks kernel threads, whose cmdline is empty
// like that of some user processes, so the flag is the reliable test.
const pfKthread = 0x00200000

// pfExiting is PF_EXITING in the flags word: the process is being torn down
// (it was killed and is releasing its memory, which for a large process can
// take a while before its exit status is in).
const pfExiting = 0x00000004

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
