// Command mutate measures what the tests promise: for each one-line
// mutation of production code in a list (test/mutations.txt), it applies the
// mutation to a copy of the repository, checks that it applied exactly once
// and still compiles, runs the tests of the packages that must catch it,
// and reports the mutation caught (the tests failed), missed (they passed)
// or invalid (it did not apply, did not compile, or the tests fail without
// it).
//
//	go run ./test/mutate                      # every mutation, one at a time
//	go run ./test/mutate -run 'kmsg|rescan'   # the mutations whose id matches
//	go run ./test/mutate -check               # only apply and compile each one
//
// It never writes to the repository: it copies the files git knows about
// (tracked, or untracked and not ignored; every file but .git when git is
// not available) once into a snapshot, and each mutation into a fresh copy
// of that snapshot. Tests see the environment it was started with, so
// RESPAWND_REQUIRE_ROOT_TESTS=1 carries through. Run it as root for the
// privileged tests: a mutation that only a skipped test would catch is
// reported missed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	list     string
	run      *regexp.Regexp
	jobs     int
	race     bool
	timeout  time.Duration
	check    bool
	baseline bool
	logDir   string
	keep     bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("mutate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o options
	var runRE string
	fl.StringVar(&o.list, "list", "", "mutation list (default test/mutations.txt of the module)")
	fl.StringVar(&runRE, "run", "", "only the mutations whose id matches this regular expression")
	fl.IntVar(&o.jobs, "j", 1, "mutations tested at once (tests use real cgroups and the kernel log: keep 1 for a trustworthy score)")
	fl.BoolVar(&o.race, "race", false, "run the tests with -race")
	fl.DurationVar(&o.timeout, "timeout", 5*time.Minute, "go test -timeout of each mutation's run")
	fl.BoolVar(&o.check, "check", false, "only apply each mutation and compile it (go vet); run no tests")
	fl.BoolVar(&o.baseline, "baseline", true, "first run the tests without any mutation: a package that fails twice makes its mutations invalid, one that fails once is named as flaky")
	fl.StringVar(&o.logDir, "log", "", "write the output of each mutation's run to DIR/ID.log")
	fl.BoolVar(&o.keep, "keep", false, "keep the working copies (their path is printed)")
	fl.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./test/mutate [flags]\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return 2
	}
	if o.jobs < 1 {
		fmt.Fprintln(stderr, "mutate: -j must be at least 1")
		return 2
	}
	var err error
	if o.run, err = regexp.Compile(runRE); err != nil {
		fmt.Fprintf(stderr, "mutate: -run: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := mutate(ctx, &o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "mutate: %v\n", err)
		return 2
	}
	return code
}

// outcome is what became of one mutation.
type outcome int

const (
	caught  outcome = iota // the tests failed
	missed                 // the tests passed
	invalid                // it did not apply or compile, or the baseline fails
	valid                  // -check: it applies and compiles
)

func (o outcome) String() string {
	return [...]string{"caught", "missed", "invalid", "valid"}[o]
}

// result is the report of one mutation.
type result struct {
	m       *mutation
	outcome outcome
	line    int           // the line changed, once applied
	took    time.Duration // the test run
	detail  string        // failing tests, or why it is invalid
}

func mutate(ctx context.Context, o *options, stdout io.Writer) (int, error) {
	root, err := moduleRoot()
	if err != nil {
		return 0, err
	}
	if o.list == "" {
		o.list = filepath.Join(root, "test", "mutations.txt")
	}
	f, err := os.Open(o.list)
	if err != nil {
		return 0, err
	}
	all, err := parseList(f, o.list)
	_ = f.Close()
	if err != nil {
		return 0, err
	}
	var ms []*mutation
	for i := range all {
		if o.run.MatchString(all[i].ID) {
			ms = append(ms, &all[i])
		}
	}
	if len(ms) == 0 {
		return 0, fmt.Errorf("no mutation in %s matches -run %q", o.list, o.run)
	}
	if o.logDir != "" {
		if err := os.MkdirAll(o.logDir, 0o755); err != nil {
			return 0, err
		}
	}

	work, err := os.MkdirTemp("", "respawnd-mutate-")
	if err != nil {
		return 0, err
	}
	// Like a checkout: tests that run as another user must reach the tree.
	if err := os.Chmod(work, 0o755); err != nil {
		return 0, err
	}
	if o.keep {
		fmt.Fprintf(stdout, "mutate: working copies in %s\n", work)
	} else {
		defer os.RemoveAll(work)
	}
	snap := filepath.Join(work, "snapshot")
	if err := snapshot(root, snap); err != nil {
		return 0, fmt.Errorf("copying the repository: %w", err)
	}
	fmt.Fprintf(stdout, "mutate: %d mutations from %s, -j %d, -race=%v, %s=%q\n",
		len(ms), o.list, o.jobs, o.race, requireEnv, os.Getenv(requireEnv))

	r := &runner{o: o, snap: snap, work: work}
	broken := map[string]string{}
	if o.baseline && !o.check {
		var pkgs []string
		for _, m := range ms {
			pkgs = append(pkgs, m.Pkgs...)
		}
		slices.Sort(pkgs)
		pkgs = slices.Compact(pkgs)
		fmt.Fprintf(stdout, "mutate: baseline: testing %s without mutations\n", strings.Join(pkgs, " "))
		broken, r.flaky, err = r.baseline(ctx, pkgs)
		if err != nil {
			return 0, err
		}
		for _, p := range pkgs {
			if why, ok := broken[p]; ok {
				fmt.Fprintf(stdout, "mutate: baseline: %s fails without mutations (%s): its mutations are invalid\n", p, why)
			}
			if why, ok := r.flaky[p]; ok {
				fmt.Fprintf(stdout, "mutate: baseline: %s failed once without mutations, then passed (%s): a mutation caught by that alone is suspect\n", p, why)
			}
		}
	}

	results := make([]*result, len(ms))
	next := make(chan int)
	var wg sync.WaitGroup
	var printMu sync.Mutex
	for w := range o.jobs {
		wg.Go(func() {
			for i := range next {
				res := r.one(ctx, w, ms[i], broken)
				results[i] = res
				printMu.Lock()
				printResult(stdout, res)
				printMu.Unlock()
			}
		})
	}
feed:
	for i := range ms {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("interrupted")
	}

	var n [4]int
	for _, res := range results {
		n[res.outcome]++
	}
	for _, oc := range []outcome{missed, invalid} {
		if n[oc] == 0 {
			continue
		}
		var ids []string
		for _, res := range results {
			if res.outcome == oc {
				ids = append(ids, res.m.ID)
			}
		}
		fmt.Fprintf(stdout, "mutate: %s: %s\n", oc, strings.Join(ids, " "))
	}
	if o.check {
		fmt.Fprintf(stdout, "mutate: valid=%d invalid=%d\n", n[valid], n[invalid])
	} else {
		fmt.Fprintf(stdout, "mutate: caught=%d missed=%d invalid=%d\n", n[caught], n[missed], n[invalid])
	}
	if n[missed] > 0 || n[invalid] > 0 {
		return 1, nil
	}
	return 0, nil
}

// requireEnv is passed through to the tests like every other variable;
// it is printed because a score without it can hide skipped tests.
const requireEnv = "RESPAWND_REQUIRE_ROOT_TESTS"

func printResult(w io.Writer, res *result) {
	where := res.m.File
	if res.line > 0 {
		where = fmt.Sprintf("%s:%d", res.m.File, res.line)
	}
	took := ""
	if res.took > 0 {
		took = res.took.Round(100 * time.Millisecond).String()
	}
	detail := res.detail
	if res.outcome == missed {
		detail = "tests of " + strings.Join(res.m.Pkgs, " ") + " passed: " + res.m.Desc
	}
	fmt.Fprintf(w, "%-7s  %-36s  %-40s  %6s  %s\n", res.outcome, res.m.ID, where, took, detail)
}

// moduleRoot finds the directory of the go.mod above the working
// directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
