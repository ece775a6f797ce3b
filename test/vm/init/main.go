//go:build linux

// Command init is PID 1 of the test machine that test/vm/run boots. It makes
// a minimal Linux with cgroup v2 only (proc, sysfs, devtmpfs, cgroup2 at
// /sys/fs/cgroup, tmpfs at /tmp and /run, the loopback interface up, an /etc
// that knows root and nobody), runs every test binary under /tests in a
// cgroup of its own with a timeout, copies the output to the console
// between markers, prints one result line per binary and powers the machine
// off.
//
// Everything it prints for the host starts with "@@vm:" at the start of a
// line; the test binaries' own output stands between "@@vm:begin" and
// "@@vm:end". The host's test/vm/run reads nothing else.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// configEnv is the variable, set from the kernel command line, that holds
// the run's configuration as base64 of JSON. The kernel hands command-line
// words of the form NAME=VALUE that it does not know to init's environment.
const configEnv = "RESPAWND_VM"

// Where things are in the initramfs and in the guest.
const (
	testsDir  = "/tests" // the test binaries, NAME.test
	srcDir    = "/src"   // test data, laid out as in the repository
	cgroupFS  = "/sys/fs/cgroup"
	sliceName = "system.slice" // parent of the test binaries' cgroups
)

// binary is one test binary to run.
type binary struct {
	// Name is the file /tests/NAME.test and the name in the markers.
	Name string `json:"name"`
	// Dir is the package directory relative to the repository root: the
	// binary runs there, as under go test, so that relative paths to
	// testdata resolve.
	Dir string `json:"dir"`
}

// config is what the host passes on the kernel command line.
type config struct {
	Binaries []binary `json:"binaries"`
	// Run and Skip are passed as -test.run and -test.skip when set.
	Run  string `json:"run,omitempty"`
	Skip string `json:"skip,omitempty"`
	// Count is passed as -test.count when above 1.
	Count int `json:"count,omitempty"`
	// Timeout is each binary's -test.timeout; the binary's cgroup is killed
	// 30 s after it.
	Timeout string `json:"timeout"`
}

// killGrace is how long after its own -test.timeout a binary is killed:
// long enough for the test framework's panic with every goroutine's stack.
const killGrace = 30 * time.Second

// console is where everything goes: /dev/console, the first serial port.
var console io.Writer = os.Stderr

func say(format string, args ...any) {
	fmt.Fprintf(console, "@@vm:"+format+"\n", args...)
}

func main() {
	err := run()
	if err != nil {
		say("error %s", strconv.Quote(err.Error()))
	}
	unix.Sync()
	// Power off: qemu exits, and the host knows the run ended on its own.
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		say("error %s", strconv.Quote("power off: "+err.Error()))
	}
	select {} // PID 1 must not exit: the kernel would panic
}

func run() error {
	if err := setup(); err != nil {
		return err
	}
	cfg, err := readConfig()
	if err != nil {
		return err
	}
	env, err := describe()
	if err != nil {
		return err
	}
	// The firmware's and the kernel's last bytes may lack a newline.
	fmt.Fprintln(console)
	say("boot %s", env)

	reaper := startReaper()
	total := time.Now()
	for _, b := range cfg.Binaries {
		runBinary(cfg, b, reaper)
	}
	dumpKernelErrors()
	say("done seconds=%.2f uptime=%s", time.Since(total).Seconds(), uptime())
	return nil
}

// setup mounts the file systems, brings up lo, writes /etc and enables the
// memory and pids controllers down to the test binaries' parent cgroup.
func setup() error {
	for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/run", "/etc", "/root"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// devtmpfs first: until /dev/console is open nothing can be printed,
	// and os/exec in the tests needs /dev/null.
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	if err := openConsole(); err != nil {
		return err
	}
	mounts := []struct {
		src, target, fstype string
		flags               uintptr
		data                string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		// The options systemd mounts cgroup2 with on production hosts.
		{"cgroup2", cgroupFS, "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "nsdelegate,memory_recursiveprot"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
		}
	}
	// Keep the kernel's err-level lines (an OOM kill prints one) off the
	// console, where they could land inside a line of test output; crit and
	// worse (oopses, panics) still show. They are printed at the end.
	if err := os.WriteFile("/proc/sys/kernel/printk", []byte("3"), 0); err != nil {
		return fmt.Errorf("setting the console log level: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	// user.Lookup("nobody") and friends read these.
	etc := map[string]string{
		"/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"/etc/group":  "root:x:0:\nnogroup:x:65534:\n",
		"/etc/hosts":  "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
	}
	for name, content := range etc {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	// As on a systemd host: the controllers are enabled in the root and in
	// system.slice, and each test binary lives in a leaf below, like a
	// service (init itself stays in the root, which may hold processes).
	slice := filepath.Join(cgroupFS, sliceName)
	if err := os.Mkdir(slice, 0o755); err != nil {
		return err
	}
	for _, dir := range []string{cgroupFS, slice} {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+memory +pids"), 0); err != nil {
			return fmt.Errorf("enabling controllers in %s: %w", dir, err)
		}
	}
	return nil
}

// openConsole makes /dev/console fds 0, 1 and 2: the kernel opens it for
// init only if the initramfs has the device node, and this one has none.
func openConsole() error {
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/console: %w", err)
	}
	for i := 0; i < 3; i++ {
		if fd != i {
			if err := unix.Dup3(fd, i, 0); err != nil {
				return fmt.Errorf("dup of the console: %w", err)
			}
		}
	}
	if fd > 2 {
		_ = unix.Close(fd)
	}
	console = os.Stdout
	return nil
}

// loopbackUp sets IFF_UP on lo; the kernel then gives it 127.0.0.1 and ::1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading flags of lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

func readConfig() (config, error) {
	var cfg config
	raw, err := base64.StdEncoding.DecodeString(os.Getenv(configEnv))
	if err != nil {
		return cfg, fmt.Errorf("decoding %s: %w", configEnv, err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, fmt.Errorf("parsing %s: %w", configEnv, err)
	}
	if len(cfg.Binaries) == 0 {
		return cfg, errors.New("no test binaries given")
	}
	if _, err := time.ParseDuration(cfg.Timeout); err != nil {
		return cfg, fmt.Errorf("timeout: %w", err)
	}
	return cfg, nil
}

// describe returns the boot line's fields: the kernel release, the cgroup
// mode, the root's controllers, memory and CPUs, and the uptime.
func describe() (string, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", err
	}
	mode := "none"
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupFS, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		mode = "v2"
	}
	// A v1 hierarchy would add lines other than "0::/" here.
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(string(self)) != "0::/" {
		mode = "mixed"
	}
	ctrl, err := os.ReadFile(filepath.Join(cgroupFS, "cgroup.controllers"))
	if err != nil {
		return "", err
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return "", err
	}
	return fmt.Sprintf("kernel=%s cgroup=%s controllers=%s mem_mib=%d swap_mib=%d cpus=%d uptime=%s",
		unix.ByteSliceToString(uts.Release[:]), mode, strings.Join(strings.Fields(string(ctrl)), ","),
		uint64(si.Totalram)*uint64(si.Unit)>>20, uint64(si.Totalswap)*uint64(si.Unit)>>20,
		countCPUs(), uptime()), nil
}

func countCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	return set.Count()
}

// uptime is the first field of /proc/uptime: seconds since the kernel
// started, which makes the boot line's value the boot time.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// exit is a reaped child.
type exit struct {
	pid    int
	status unix.WaitStatus
}

// startReaper reaps every child of init, which as PID 1 includes every
// orphan in the machine, and sends each exit on the returned channel. The
// channel is buffered so that a burst of orphans never blocks reaping; the
// test loop drains it.
func startReaper() <-chan exit {
	out := make(chan exit, 4096)
	go func() {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			switch {
			case err == nil:
				select {
				case out <- exit{pid, ws}:
				default: // nobody waits for orphans: drop
				}
			case errors.Is(err, unix.EINTR):
			default: // ECHILD: nothing to reap until the next binary starts
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	return out
}

// counts tallies the top-level test results of one binary, as go test -v
// prints them.
type counts struct {
	passed, failed, skipped int
	failedNames             []string
}

var resultLine = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+)`)

func (c *counts) add(line string) {
	m := resultLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	switch m[1] {
	case "PASS":
		c.passed++
	case "FAIL":
		c.failed++
		c.failedNames = append(c.failedNames, m[2])
	case "SKIP":
		c.skipped++
	}
}

// runBinary runs one test binary in its own cgroup below system.slice and
// reports it. Whatever it leaves running is killed before the next one.
func runBinary(cfg config, b binary, reaper <-chan exit) {
	timeout, _ := time.ParseDuration(cfg.Timeout)
	say("begin name=%s", b.Name)
	start := time.Now()
	status, code, c, leftover, err := execBinary(cfg, b, timeout, reaper)
	if err != nil {
		fmt.Fprintf(console, "%s: %v\n", b.Name, err)
		status = "error"
	}
	say("end name=%s", b.Name)
	failedNames := "-"
	if len(c.failedNames) > 0 {
		failedNames = strings.Join(c.failedNames, ",")
	}
	say("result name=%s status=%s exit=%d passed=%d failed=%d skipped=%d seconds=%.2f leftover=%d failed_tests=%s",
		b.Name, status, code, c.passed, c.failed, c.skipped, time.Since(start).Seconds(), leftover, failedNames)
}

func execBinary(cfg config, b binary, timeout time.Duration, reaper <-chan exit) (status string, code int, c counts, leftover int, err error) {
	code = -1
	path := filepath.Join(testsDir, b.Name+".test")
	cg := filepath.Join(cgroupFS, sliceName, b.Name+"-test.service")
	if err := os.Mkdir(cg, 0o755); err != nil {
		return "", code, c, 0, err
	}
	cgFD, err := unix.Open(cg, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", code, c, 0, err
	}
	defer unix.Close(cgFD)
	dir := filepath.Join(srcDir, b.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", code, c, 0, err
	}

	args := []string{path, "-test.v", "-test.timeout=" + timeout.String()}
	if cfg.Run != "" {
		args = append(args, "-test.run="+cfg.Run)
	}
	if cfg.Skip != "" {
		args = append(args, "-test.skip="+cfg.Skip)
	}
	if cfg.Count > 1 {
		args = append(args, "-test.count="+strconv.Itoa(cfg.Count))
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return "", code, c, 0, err
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return "", code, c, 0, err
	}
	proc, err := os.StartProcess(path, args, &os.ProcAttr{
		Dir: dir,
		Env: []string{
			"PATH=/usr/bin:/bin",
			"HOME=/root",
			"RESPAWND_REQUIRE_ROOT_TESTS=1",
			"RESPAWND_VM_GUEST=1",
		},
		Files: []*os.File{devNull, w, w},
		// Born in its cgroup, in a session of its own.
		Sys: &unix.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: cgFD},
	})
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return "", code, c, 0, err
	}
	pid := proc.Pid

	// Copy the output line by line, counting results. Helpers that the
	// binary leaves behind hold the pipe open, so the copy ends only after
	// they are killed below.
	copied := make(chan counts, 1)
	go func() {
		var c counts
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				if !strings.HasSuffix(line, "\n") {
					line += "\n"
				}
				_, _ = io.WriteString(console, line)
				c.add(line)
			}
			if err != nil {
				break
			}
		}
		_ = r.Close()
		copied <- c
	}()

	status = "pass"
	timer := time.NewTimer(timeout + killGrace)
	defer timer.Stop()
	var ws unix.WaitStatus
wait:
	for {
		select {
		case e := <-reaper:
			if e.pid == pid {
				ws = e.status
				break wait
			}
		case <-timer.C:
			status = "timeout"
			say("timeout name=%s after=%s", b.Name, timeout+killGrace)
			// Everything below the binary's cgroup, the binary included.
			_ = os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0)
		}
	}
	switch {
	case ws.Exited():
		code = ws.ExitStatus()
	case ws.Signaled():
		code = 128 + int(ws.Signal())
	}
	leftover = killStrays(reaper)
	select {
	case c = <-copied:
	case <-time.After(10 * time.Second):
		fmt.Fprintf(console, "%s: output pipe still open 10s after the binary ended\n", b.Name)
	}
	if status == "pass" && (code != 0 || c.failed > 0) {
		status = "fail"
	}
	return status, code, c, leftover, nil
}

// killStrays SIGKILLs every process but init (helpers a binary left
// behind), waits until they are reaped and returns how many there were.
func killStrays(reaper <-chan exit) int {
	strays := processes()
	if len(strays) == 0 {
		return 0
	}
	// kill(-1) from PID 1 reaches every process but init itself.
	_ = unix.Kill(-1, unix.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for len(processes()) > 0 && time.Now().Before(deadline) {
		select {
		case <-reaper:
		case <-time.After(20 * time.Millisecond):
		}
	}
	for {
		select {
		case <-reaper:
		default:
			return len(strays)
		}
	}
}

// processes lists the user-space processes other than init, zombies
// included: every /proc/PID with a non-empty cmdline, or a zombie's state.
func processes() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 1 {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && len(b) > 0 {
			out = append(out, pid)
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			s := string(b)
			if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] == 'Z' {
				out = append(out, pid)
			}
		}
	}
	return out
}

// dumpKernelErrors prints the kernel's own messages of level err and worse
// (OOM kills, warnings of failing subsystems): the console did not show
// them while tests ran.
func dumpKernelErrors() {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		say("kmsg-error %s", strconv.Quote(err.Error()))
		return
	}
	defer unix.Close(fd)
	var lines []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) {
			continue // overwritten records: go on with the next
		}
		if err != nil || n <= 0 {
			break
		}
		// "prio,seq,usec,flags;text\n" then " KEY=value" lines.
		rec := string(buf[:n])
		head, text, ok := strings.Cut(rec, ";")
		if !ok {
			continue
		}
		fields := strings.Split(head, ",")
		prio, err := strconv.Atoi(fields[0])
		if err != nil || prio>>3 != 0 || prio&7 > 3 {
			continue // not from the kernel, or below err
		}
		text, _, _ = strings.Cut(text, "\n")
		usec := int64(0)
		if len(fields) > 2 {
			usec, _ = strconv.ParseInt(fields[2], 10, 64)
		}
		lines = append(lines, fmt.Sprintf("[%5d.%06d] %s", usec/1e6, usec%1e6, text))
	}
	const max = 200
	say("kmsg-begin lines=%d", len(lines))
	if len(lines) > max {
		fmt.Fprintf(console, "(first %d lines left out)\n", len(lines)-max)
		lines = slices.Clone(lines[len(lines)-max:])
	}
	for _, l := range lines {
		fmt.Fprintln(console, l)
	}
	say("kmsg-end")
}
