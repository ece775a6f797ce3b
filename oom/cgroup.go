package oom

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/respawnd/respawnd/internal/pseudofs"
)

// maxCgroupFile caps reads of cgroupfs and procfs files, whose reported
// sizes are meaningless.
const maxCgroupFile = 64 << 10

// CgroupCounts are a memory cgroup's OOM counters.
type CgroupCounts struct {
	OOM          uint64 // v2: times the limit was hit and the OOM killer invoked; v1: 0
	OOMKill      uint64 // processes killed by the OOM killer in this cgroup
	OOMGroupKill uint64 // v2 only
	// UnderOOM is v1's under_oom flag: the cgroup is in an OOM right now
	// (only ever visible for long with oom_kill_disable set).
	UnderOOM bool
}

// ReadCgroupCounts reads the counters of the cgroup directory dir: v2
// memory.events.local (falling back to memory.events), v1 memory.oom_control.
// Keys an older kernel lacks read as 0. A removed cgroup yields an error
// matching fs.ErrNotExist.
func ReadCgroupCounts(dir string, v2 bool) (CgroupCounts, error) {
	if !v2 {
		b, err := readCapped(filepath.Join(dir, "memory.oom_control"))
		if err != nil {
			return CgroupCounts{}, err
		}
		return parseOOMControl(bytes.NewReader(b))
	}
	// memory.events.local (Linux 5.2+) counts this cgroup only; memory.events
	// also counts descendants.
	b, err := readCapped(filepath.Join(dir, "memory.events.local"))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = readCapped(filepath.Join(dir, "memory.events"))
	}
	if err != nil {
		return CgroupCounts{}, err
	}
	return parseMemoryEvents(bytes.NewReader(b))
}

func readCapped(path string) ([]byte, error) {
	return pseudofs.Read(path, maxCgroupFile)
}

// flatKeyed calls fn for each "key value" line of a flat-keyed cgroup or
// procfs file.
func flatKeyed(r io.Reader, what string, fn func(key string, v uint64)) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte{' '})
		if !ok {
			continue
		}
		n, ok := parseUint(bytes.TrimSpace(v))
		if !ok {
			return fmt.Errorf("parsing %s: bad value for %q", what, k)
		}
		fn(string(k), n)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}
