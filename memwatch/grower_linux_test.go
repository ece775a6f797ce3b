package memwatch

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/respawnd/respawnd/internal/testenv"
)

// growerArg makes the test binary run as the grower: a victim whose memory
// grows on command, which reports when its own cgroup's measure passes a
// threshold. testenv's helpers allocate as fast as they can; the watchdog
// needs a program that grows at a known rate and says when it crossed.
const growerArg = "respawnd-memwatch-grower"

// growerParams configure a grower; sizes are bytes.
type growerParams struct {
	cgroup    *testenv.MemoryCgroup
	measure   Measure
	threshold uint64
	// fast is allocated at once by each "grow"; then step every period.
	fast, step uint64
	period     time.Duration
	// extra is allocated after the crossing, then the grower holds; max
	// caps the allocation (the grower then reports "max" and holds).
	extra, max uint64
}

// runGrowerIfRequested runs the grower and exits when the test binary was
// started as one; otherwise it returns at once.
//
// The grower first moves itself into the cgroup (writing 0 to cgroup.procs
// moves the writer, on v1 and v2), prints "ready", then obeys stdin:
//
//	grow   allocate and touch fast bytes at once, then step bytes every
//	       period; after each step read the cgroup's measure and, the
//	       first time it is at or above threshold, print
//	       "crossed START REPORT VALUE", START being when the step
//	       began and REPORT when the reading showed the crossing (Unix
//	       ns); after extra more bytes print "held";
//	       at max allocated bytes print "max UNIXNANO". Then wait.
//	free   unmap everything, print "freed"
//	(EOF)  exit
func runGrowerIfRequested() {
	if len(os.Args) < 2 || os.Args[1] != growerArg {
		return
	}
	if err := runGrower(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "grower:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func runGrower(args []string) error {
	kv := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		kv[k] = v
	}
	num := func(k string) uint64 {
		n, _ := strconv.ParseUint(kv[k], 10, 64)
		return n
	}
	dir, v2 := kv["dir"], kv["v2"] == "1"
	m, err := ParseMeasure(kv["measure"])
	if err != nil {
		return err
	}
	period, err := time.ParseDuration(kv["period"])
	if err != nil {
		return err
	}
	threshold, fast, step, extra, limit := num("threshold"), num("fast"), num("step"), num("extra"), num("max")
	if err := os.WriteFile(kv["procs"], []byte("0"), 0); err != nil {
		return err
	}
	fmt.Println("ready")
	var maps [][]byte
	var total uint64
	alloc := func(n uint64) error {
		b, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		maps = append(maps, b)
		total += n
		return nil
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "grow":
			for total+step <= fast {
				if err := alloc(step); err != nil {
					return err
				}
			}
			crossed, left := false, extra
			for {
				if total+step > limit {
					fmt.Println("max", time.Now().UnixNano())
					break
				}
				start := time.Now()
				if err := alloc(step); err != nil {
					return err
				}
				if crossed {
					if left <= step {
						fmt.Println("held")
						break
					}
					left -= step
				} else {
					s, err := ReadCgroup(dir, v2)
					if err != nil {
						return err
					}
					if v := s.Value(m); v >= threshold {
						fmt.Println("crossed", start.UnixNano(), time.Now().UnixNano(), v)
						crossed = true
					}
				}
				time.Sleep(period)
			}
		case "free":
			for _, b := range maps {
				if err := unix.Munmap(b); err != nil {
					return err
				}
			}
			maps, total = nil, 0
			fmt.Println("freed")
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
	}
	return in.Err()
}

// grower is a running grower process.
type grower struct {
	t     testing.TB
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // closed when its stdout ends
}

// startGrower starts a grower in p.cgroup and waits until it is there. It
// is killed and reaped at the end of the test, before the cgroup goes.
func startGrower(t testing.TB, p growerParams) *grower {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	v2 := "0"
	if p.cgroup.V2 {
		v2 = "1"
	}
	cmd := exec.Command(exe, growerArg,
		"procs="+p.cgroup.Procs(), "dir="+p.cgroup.Dir, "v2="+v2, "measure="+p.measure.String(),
		"threshold="+strconv.FormatUint(p.threshold, 10), "fast="+strconv.FormatUint(p.fast, 10),
		"step="+strconv.FormatUint(p.step, 10), "period="+p.period.String(),
		"extra="+strconv.FormatUint(p.extra, 10), "max="+strconv.FormatUint(p.max, 10))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the grower: %v", err)
	}
	g := &grower{t: t, cmd: cmd, in: in, lines: make(chan string, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(g.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			g.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		// Through the os.Process, which holds a pidfd: never a reused pid.
		_ = cmd.Process.Kill()
		for range g.lines { // let the reader reach EOF
		}
		<-done
		_ = cmd.Wait()
	})
	g.expect("ready", 30*time.Second)
	return g
}

// send writes one command.
func (g *grower) send(cmd string) {
	g.t.Helper()
	if _, err := io.WriteString(g.in, cmd+"\n"); err != nil {
		g.t.Fatalf("grower %s: %v", cmd, err)
	}
}

// expect waits for the next line, which must start with word, and returns
// its other fields.
func (g *grower) expect(word string, timeout time.Duration) []string {
	g.t.Helper()
	select {
	case l, ok := <-g.lines:
		if !ok {
			g.t.Fatalf("grower exited while waiting for %q", word)
		}
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != word {
			g.t.Fatalf("grower said %q, want %q", l, word)
		}
		return f[1:]
	case <-time.After(timeout):
		g.t.Fatalf("grower: no %q within %s", word, timeout)
	}
	return nil
}

// crossed waits for the crossing report and returns when the step that
// crossed began and when the grower saw the crossing. The two differ by
// the step's allocation, and by any throttling the kernel imposed on it
// (above memory.high, the return from the faulting touch sleeps).
func (g *grower) crossed(timeout time.Duration) (start, report time.Time) {
	g.t.Helper()
	f := g.expect("crossed", timeout)
	var ns [2]int64
	for i := range ns {
		var err error
		if ns[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			g.t.Fatalf("grower: bad crossing time %q", f[i])
		}
	}
	return time.Unix(0, ns[0]), time.Unix(0, ns[1])
}
