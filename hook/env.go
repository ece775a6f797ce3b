package hook

import (
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// recordFD is RESPAWND_RECORD for a hook given the record as fd 3.
const recordFD = "/proc/self/fd/3"

// envPrefix starts every variable the Runner sets.
const envPrefix = "RESPAWND_"

// environ returns the hook's environment for e: base without any
// RESPAWND_ variable, then RESPAWND_PROGRAM, RESPAWND_REASON,
// RESPAWND_EXIT_CODE, RESPAWND_SIGNAL, RESPAWND_PID, RESPAWND_GENERATION
// and RESPAWND_RECORD (record). Every one is set, to "" when it does not
// apply, so that a script with set -u can test it.
func environ(base []string, e Exit, record string) []string {
	out := make([]string, 0, len(base)+7)
	for _, kv := range base {
		if !strings.HasPrefix(kv, envPrefix) {
			out = append(out, kv)
		}
	}
	code := ""
	if e.ExitCode != nil {
		code = strconv.Itoa(*e.ExitCode)
	}
	pid := ""
	if e.PID != 0 {
		pid = strconv.Itoa(e.PID)
	}
	return append(out,
		envPrefix+"PROGRAM="+e.Program,
		envPrefix+"REASON="+e.Reason,
		envPrefix+"EXIT_CODE="+code,
		envPrefix+"SIGNAL="+e.Signal,
		envPrefix+"PID="+pid,
		envPrefix+"GENERATION="+strconv.FormatUint(e.Generation, 10),
		envPrefix+"RECORD="+record,
	)
}

// signalName returns the name of sig, such as "SIGKILL", or its number.
func signalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return strconv.Itoa(int(sig))
}
