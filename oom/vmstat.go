package oom

import (
	"bytes"
	"path/filepath"
)

// VMStatOOMKills reads the host-wide oom_kill counter (Linux 4.13+) from
// procRoot/vmstat. prometheus/procfs has no /proc/vmstat reader, so the file
// is parsed here. A kernel without the counter yields 0 and no error.
func VMStatOOMKills(procRoot string) (uint64, error) {
	b, err := readCapped(filepath.Join(procRoot, "vmstat"))
	if err != nil {
		return 0, err
	}
	return parseVMStatOOMKills(b)
}

func parseVMStatOOMKills(b []byte) (uint64, error) {
	var n uint64
	err := flatKeyed(bytes.NewReader(b), "vmstat", func(k string, v uint64) {
		if k == "oom_kill" {
			n = v
		}
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
