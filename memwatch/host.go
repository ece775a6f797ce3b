package memwatch

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// Host is the host's memory at one moment.
type Host struct {
	// At is when it was read; zero for a Host never read.
	At time.Time
	// MemTotal and MemAvailable are /proc/meminfo's, in bytes.
	MemTotal, MemAvailable uint64
	// Pressure is /proc/pressure/memory, or nil when the kernel has no
	// PSI (built without CONFIG_PSI, or booted with it off: psi=0, or
	// built with CONFIG_PSI_DEFAULT_DISABLED and booted without psi=1).
	Pressure *Pressure
}

// Pressure is the memory pressure stall information of the host
// (Documentation/accounting/psi.rst).
type Pressure struct {
	// Some is the share of time some tasks were stalled on memory; Full,
	// the share of time all non-idle tasks were.
	Some, Full PressureLine
}

// PressureLine is one line of a pressure file.
type PressureLine struct {
	// Avg10, Avg60 and Avg300 are the percentages of time stalled over the
	// last 10, 60 and 300 seconds.
	Avg10, Avg60, Avg300 float64
	// Total is the time stalled since boot.
	Total time.Duration
}

// ReadHost reads /proc/meminfo and /proc/pressure/memory under procRoot
// ("/proc" if empty). A missing pressure file is not an error: Pressure is
// then nil.
func ReadHost(procRoot string) (Host, error) {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return Host{}, fmt.Errorf("reading host memory: %w", err)
	}
	h, _, err := readHost(pfs)
	return h, err
}

// readHost reads the host's memory through pfs. noPSI says why Pressure is
// nil when it is; err covers everything else, an unreadable or malformed
// pressure file included.
func readHost(pfs procfs.FS) (h Host, noPSI, err error) {
	mi, err := pfs.Meminfo()
	if err != nil {
		return Host{}, nil, fmt.Errorf("reading /proc/meminfo: %w", err)
	}
	if mi.MemAvailableBytes == nil || mi.MemTotalBytes == nil {
		return Host{}, nil, ErrNoMemAvailable
	}
	h.MemTotal, h.MemAvailable = *mi.MemTotalBytes, *mi.MemAvailableBytes
	psi, err := pfs.PSIStatsForResource("memory")
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.EOPNOTSUPP):
		// PSI compiled out, or off: the files are absent (psi_proc_init)
		// or refuse reads.
		return h, err, nil
	case err != nil:
		return h, nil, fmt.Errorf("reading /proc/pressure/memory: %w", err)
	case psi.Some == nil:
		return h, nil, errors.New("reading /proc/pressure/memory: no some line")
	}
	p := &Pressure{Some: pressureLine(psi.Some)}
	if psi.Full != nil { // the memory file always has one; be lenient anyway
		p.Full = pressureLine(psi.Full)
	}
	h.Pressure = p
	return h, nil, nil
}

func pressureLine(l *procfs.PSILine) PressureLine {
	return PressureLine{Avg10: l.Avg10, Avg60: l.Avg60, Avg300: l.Avg300, Total: time.Duration(l.Total) * time.Microsecond}
}
