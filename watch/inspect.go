package watch

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Details is what respawnd checks about a process before it trusts it as a
// program's instance: who runs it, what it runs, where it sits among
// process groups, and the tag respawnd put in its environment.
type Details struct {
	Identity
	// PGID and SID are the process group and session.
	PGID, SID int
	// UID is the real uid and EUID the effective uid.
	UID, EUID int
	// Exe is the resolved executable, without the " (deleted)" suffix; ""
	// when it cannot be read.
	Exe string
	// Tag is the value of TagKey in the process's initial environment, ""
	// when there is none.
	Tag string
	// Exiting says the process is being torn down (PF_EXITING) or is a
	// zombie.
	Exiting bool
}

// Inspect reads the details of the live process pid. It fails with an error
// wrapping ErrNotFound when the process is gone, and re-reads the start
// time at the end so that the details never mix two processes that had the
// same pid.
func (s *Scanner) Inspect(pid int) (Details, error) { return s.inspect(pid, true) }

// InspectUntagged is Inspect without the tag: it leaves Tag empty and does
// not read the process's environment, one read of five that recording a
// process respawnd started itself does not need.
func (s *Scanner) InspectUntagged(pid int) (Details, error) { return s.inspect(pid, false) }

func (s *Scanner) inspect(pid int, tag bool) (Details, error) {
	sf, err := s.readStat(pid)
	if err != nil {
		if isChurn(err) {
			return Details{}, fmt.Errorf("inspecting pid %d: %w", pid, ErrNotFound)
		}
		return Details{}, fmt.Errorf("inspecting pid %d: %w", pid, err)
	}
	d := Details{
		Identity: Identity{PID: pid, StartTime: sf.StartTime},
		PGID:     sf.PGRP,
		SID:      sf.Session,
		Exiting:  deadState(sf.State) || sf.Flags&pfExiting != 0,
	}
	dir := filepath.Join(s.root, strconv.Itoa(pid))
	status, err := readCapped(filepath.Join(dir, "status"), maxProcFile)
	if err != nil {
		return Details{}, s.inspectErr(pid, "status", err)
	}
	if d.UID, d.EUID, err = parseStatusUIDs(status); err != nil {
		return Details{}, fmt.Errorf("inspecting pid %d: %w", pid, err)
	}
	if p, err := s.fs.Proc(pid); err == nil {
		if exe, err := p.Executable(); err == nil {
			d.Exe = strings.TrimSuffix(exe, " (deleted)")
		}
	}
	if tag {
		env, err := readCapped(filepath.Join(dir, "environ"), maxProcFile)
		if err != nil {
			return Details{}, s.inspectErr(pid, "environ", err)
		}
		d.Tag = envValue(env, TagKey)
	}
	again, err := s.readStat(pid)
	if err != nil || again.StartTime != sf.StartTime {
		return Details{}, fmt.Errorf("inspecting pid %d: %w", pid, ErrNotFound)
	}
	return d, nil
}

func (s *Scanner) inspectErr(pid int, file string, err error) error {
	if isChurn(err) {
		return fmt.Errorf("inspecting pid %d: %w", pid, ErrNotFound)
	}
	return fmt.Errorf("inspecting pid %d: reading %s: %w", pid, file, err)
}

// Exiting reports whether the process id is being torn down or is a
// zombie. A process that is gone, or whose pid now names another process,
// counts as exiting.
func (s *Scanner) Exiting(id Identity) bool {
	sf, err := s.readStat(id.PID)
	if err != nil || sf.StartTime != id.StartTime {
		return true
	}
	return deadState(sf.State) || sf.Flags&pfExiting != 0
}

// Tagged returns every live process whose initial environment holds TagKey
// with a value starting with prefix (see Prefix), with its details, from one
// pass over /proc. Kernel threads, zombies and processes that vanish during
// the scan are skipped.
func (s *Scanner) Tagged(prefix string) ([]Details, error) {
	procs, err := s.fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", s.root, err)
	}
	want := []byte(TagKey + "=" + prefix)
	var out []Details
	for _, p := range procs {
		env, err := readCapped(filepath.Join(s.root, strconv.Itoa(p.PID), "environ"), maxProcFile)
		if err != nil {
			s.skip(p.PID, "environ", err)
			continue
		}
		if !bytes.Contains(env, want) {
			continue
		}
		d, err := s.Inspect(p.PID)
		if err != nil {
			s.skip(p.PID, "details", err)
			continue
		}
		if d.Exiting || !strings.HasPrefix(d.Tag, prefix) {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// envValue returns the value of key in a NUL-separated environment block,
// or "". The first entry wins, as for getenv(3).
func envValue(env []byte, key string) string {
	k := []byte(key + "=")
	for len(env) > 0 {
		entry := env
		if i := bytes.IndexByte(env, 0); i >= 0 {
			entry, env = env[:i], env[i+1:]
		} else {
			env = nil
		}
		if bytes.HasPrefix(entry, k) {
			return string(entry[len(k):])
		}
	}
	return ""
}

// parseStatusUIDs reads the real and effective uid from the Uid: line of
// /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs").
func parseStatusUIDs(status []byte) (real, effective int, err error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 2 {
			break
		}
		if real, err = strconv.Atoi(string(f[0])); err != nil {
			break
		}
		if effective, err = strconv.Atoi(string(f[1])); err != nil {
			break
		}
		return real, effective, nil
	}
	return 0, 0, fmt.Errorf("parsing status: no valid Uid line")
}
