package config

import (
	"regexp/syntax"
	"time"
)

// Bounds on every value a configuration may hold. Each lies far beyond what
// a real deployment needs; together they make sure that whatever Parse or
// Validate accepts can run in bounded memory and time. No configured number
// is used as a size to allocate, a count to loop over, or an operand that
// could overflow. docs/config.md lists them with the same reasons.
const (
	// MaxFileSize bounds the configuration file. At MaxPrograms programs it
	// leaves over 400 bytes for each (aliases share the rest), and it keeps
	// the YAML parser's node tree, which costs 30 to 100 times the size of
	// the text, at a few hundred MiB and a few seconds at worst.
	MaxFileSize = 4 << 20

	// MaxPrograms bounds the programs in one file. Each is a goroutine, a
	// cgroup, a few dozen metric series and a line in every API answer; the
	// README's figures are for 1,000. A fleet larger than 10,000 programs
	// belongs in several respawnd instances.
	MaxPrograms = 10000

	// MaxNameLen bounds a program name in bytes. The name becomes a cgroup
	// directory name (NAME_MAX is 255), a metric label value and part of an
	// environment variable in every process of the program.
	MaxNameLen = 64

	// MaxArgLen bounds one command argument, and one environment variable
	// written as NAME=value, in bytes: the kernel's MAX_ARG_STRLEN (32
	// pages, 128 KiB) counts the terminating NUL, and execve fails with
	// E2BIG above it.
	MaxArgLen = 128<<10 - 1

	// MaxCommandArgs and MaxEnvVars bound the entries of command and env. A
	// program with thousands of arguments reads them from a file instead.
	MaxCommandArgs = 4096
	MaxEnvVars     = 4096

	// MaxCommandSize and MaxEnvSize bound a program's command and env in
	// all, counted as execve counts them: each string's bytes, its NUL and
	// an 8-byte pointer. The kernel allows a quarter of the stack limit
	// (2 MiB under the usual 8 MiB) for both together; 1.5 MiB leaves the
	// rest to the environment respawnd passes on (PATH, HOME, LANG, LC_*,
	// TZ, its tag).
	MaxCommandSize = 1 << 20
	MaxEnvSize     = 512 << 10

	// MaxExecTotal bounds the commands and environments of all programs
	// together, counted as for MaxCommandSize after expanding aliases (an
	// alias counts each time it is used). Without it, one large env shared
	// through an alias by every program would cost MaxPrograms times its
	// size in the daemon; a file written out without aliases hardly reaches
	// it.
	MaxExecTotal = 16 << 20

	// MaxPathLen bounds dir, output.file, match.exe and match.pidfile in
	// bytes: the kernel's PATH_MAX (4096) counts the NUL.
	MaxPathLen = 4095

	// MaxUserLen bounds user, group and match.user in bytes: Linux's
	// LOGIN_NAME_MAX (256) counts the NUL.
	MaxUserLen = 255

	// MaxCmdlineLen bounds match.cmdline in bytes, and MaxCmdlineSize the
	// instructions it compiles to. Go's regexp refuses only programs above
	// 128 MiB, and a repetition multiplies what it repeats: 24 bytes of
	// `(?:\pL\pL\pL\pL){1000}` are 4000 instructions, and 4 KiB of the
	// same kind take hundreds of MiB and seconds to compile. 4096
	// instructions cost well under 1 MiB and a few milliseconds.
	MaxCmdlineLen  = 4096
	MaxCmdlineSize = 4096

	// MaxDelay bounds restart.backoff.initial, restart.backoff.max,
	// restart.reset_after and restart.limit.interval. A restart delay
	// longer than a day is giving up in all but name, and a program that
	// must run longer than a day to count as healthy is never judged.
	MaxDelay = 24 * time.Hour

	// MaxStopTimeout bounds stop.timeout. A program that needs longer than
	// an hour to stop on a signal needs its own shutdown procedure, and
	// every reload and shutdown waits for the slowest stop. The service
	// manager's stop timeout for respawnd itself (systemd's TimeoutStopSec,
	// 90s in the shipped unit) must exceed the largest stop.timeout in use,
	// or it kills the programs before their time is up.
	MaxStopTimeout = time.Hour

	// MinHookTimeout and MaxHookTimeout bound on_exit.timeout. A hook that
	// is killed before a second is up cannot even start a notifier on a
	// loaded host; one that needs more than an hour is a job, not a hook,
	// and while it runs the program's later exits are coalesced into one.
	MinHookTimeout = time.Second
	MaxHookTimeout = time.Hour

	// MaxMultiplier bounds restart.backoff.multiplier. At 100 a delay of
	// 1ms passes a day in five steps; a larger factor changes nothing but
	// the chance of overflow.
	MaxMultiplier = 100

	// MaxLimitBurst bounds restart.limit.burst. systemd's StartLimitBurst
	// defaults to 5; a program allowed 1,000 starts in one interval is not
	// limited. A program keeps the times of its last burst starts (24 bytes
	// each), so the bound also caps that history at 24 KiB.
	MaxLimitBurst = 1000

	// MinRestartsPerSecond and MaxRestartsPerSecond bound
	// limits.restarts_per_second. The slowest rate still hands out a token
	// every 1000s (under 17 minutes); below it, a single restart could wait
	// hours for its token. The fastest is beyond what fork, exec and
	// cgroup creation can do, so the bucket then limits nothing.
	MinRestartsPerSecond = 0.001
	MaxRestartsPerSecond = 10000

	// MaxRestartBurst bounds limits.restart_burst: a burst as large as the
	// largest file's programs already lets every program start at once.
	MaxRestartBurst = MaxPrograms

	// MaxRecycleFor bounds memory.recycle.for. A program that stays above
	// its threshold for a day is at its normal size, not growing towards
	// its limit: a longer window would never recycle it, and the OOM
	// killer, not the watchdog, would decide.
	MaxRecycleFor = 24 * time.Hour

	// MaxOOMHoldMax bounds restart.oom_hold_max and limits.oom_hold_max.
	// The hold delays a restart, and, as for MaxDelay, a restart held for
	// more than a day is giving up in all but name.
	MaxOOMHoldMax = 24 * time.Hour

	// MaxOOMLoop bounds restart.oom_loop. A program that needs more than
	// 1,000 OOM kills within reset_after to count as looping is never
	// called one. Counting needs the times of the last oom_loop kills at
	// most (24 bytes each), so the bound also caps that history at 24 KiB,
	// as MaxLimitBurst does for starts.
	MaxOOMLoop = 1000

	// MaxURLLen bounds health.http.url in bytes, and MaxHeaderLen one of
	// its headers written as "Name: value". Common servers refuse a request
	// line or a header longer than 8 KiB (nginx's
	// large_client_header_buffers, Apache's LimitRequestLine and
	// LimitRequestFieldSize), so a longer one could never pass.
	MaxURLLen    = 8 << 10
	MaxHeaderLen = 8 << 10

	// MaxAddressLen bounds health.tcp.address in bytes: a DNS name has at
	// most 253 bytes, an IPv6 literal with its brackets and a zone far
	// fewer, and the port at most 6 more with its colon.
	MaxAddressLen = 261

	// MinOutputMaxSize and MaxOutputMaxSize bound output.max_size when it
	// is not 0. Below 64 KiB a file would hold less than one line of the
	// longest kind respawnd writes in one piece, and rotate on every
	// line; 1 PiB is more than any filesystem holds for one log.
	MinOutputMaxSize = 64 << 10
	MaxOutputMaxSize = 1 << 50

	// MaxOutputFiles bounds output.max_files: each rotation renames every
	// rotated file, one system call each, on the goroutine that copies
	// every program's output.
	MaxOutputFiles = 100

	// MaxMemory bounds memory.max, memory.high, memory.swap_max, and
	// memory.recycle.above and memory.warn_above given as sizes, in bytes:
	// 1 EiB is more than any machine can address (x86-64 and arm64 stop
	// at 52-bit physical addresses, 4 PiB; RISC-V at 56, 64 PiB). The
	// kernel keeps a limit in a page_counter of at most LONG_MAX/PAGE_SIZE
	// pages (mm/page_counter.c), just under 8 EiB for every page size;
	// 1 EiB stays below that even rounded up to a page, and so does
	// max + swap_max, which cgroup v1 writes as one number
	// (memory.memsw.limit_in_bytes).
	MaxMemory = 1 << 60
)

// maxProblems is how many problems Parse and Validate list; a file with
// more is reported as too broken to go on.
const maxProblems = 1000

// execSize is how much of the kernel's argument space s takes: its bytes,
// the terminating NUL and the pointer to it.
func execSize(s int) int64 {
	return int64(s) + 1 + 8
}

// commandSize is MaxCommandSize's measure of argv.
func commandSize(argv []string) int64 {
	var n int64
	for _, a := range argv {
		n += execSize(len(a))
	}
	return n
}

// envSize is MaxEnvSize's measure of env, whose entries are passed as
// NAME=value.
func envSize(env map[string]string) int64 {
	var n int64
	for k, v := range env {
		n += execSize(len(k) + 1 + len(v))
	}
	return n
}

// regexpSize estimates how many instructions re compiles to, as
// regexp/syntax does for its own limit (parser.calcSize), without expanding
// repetitions. The estimate saturates instead of overflowing.
func regexpSize(re *syntax.Regexp) int64 {
	const limit = 1 << 40
	add := func(a, b int64) int64 { return min(a+b, limit) }
	mul := func(a int64, n int) int64 {
		if n <= 0 {
			return 0
		}
		if a > limit/int64(n) {
			return limit
		}
		return a * int64(n)
	}
	var size int64
	switch re.Op {
	case syntax.OpLiteral:
		size = int64(len(re.Rune))
	case syntax.OpCapture, syntax.OpStar:
		size = add(2, regexpSize(re.Sub[0]))
	case syntax.OpPlus, syntax.OpQuest:
		size = add(1, regexpSize(re.Sub[0]))
	case syntax.OpConcat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			size = add(size, regexpSize(sub))
		}
		if re.Op == syntax.OpAlternate {
			size = add(size, int64(len(re.Sub)))
		}
	case syntax.OpRepeat:
		sub := regexpSize(re.Sub[0])
		switch {
		case re.Max == -1 && re.Min == 0:
			size = add(2, sub) // x*
		case re.Max == -1:
			size = add(1, mul(sub, re.Min)) // xxx+
		default:
			size = add(mul(sub, re.Max), int64(re.Max-re.Min)) // xx(x(x)?)?
		}
	}
	return max(1, size)
}
