package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// vetTimeout bounds one go vet (a compile of the mutated package and of
// the packages under test, with their tests).
const vetTimeout = 5 * time.Minute

// runner applies mutations to copies of the snapshot and runs the go tool
// there.
type runner struct {
	o    *options
	snap string // the snapshot of the repository
	work string // holds the snapshot and one working copy per worker
	// flaky holds the packages whose baseline failed once and then passed,
	// with what failed.
	flaky map[string]string
}

// one applies m in worker's copy and tests it.
func (r *runner) one(ctx context.Context, worker int, m *mutation, broken map[string]string) *result {
	res := &result{m: m, outcome: invalid}
	for _, p := range m.Pkgs {
		if why, ok := broken[p]; ok {
			res.detail = "the tests of " + p + " fail without any mutation: " + why
			return res
		}
	}
	// The same path for every mutation of a worker, so that the build cache
	// serves the packages the mutation does not touch.
	dir := filepath.Join(r.work, fmt.Sprintf("w%d", worker))
	if err := fresh(r.snap, dir); err != nil {
		res.detail = err.Error()
		return res
	}
	file := filepath.Join(dir, filepath.FromSlash(m.File))
	src, err := os.ReadFile(file)
	if err != nil {
		res.detail = err.Error()
		return res
	}
	mutated, line, err := m.apply(src)
	if err != nil {
		res.detail = err.Error()
		return res
	}
	res.line = line
	if err := os.WriteFile(file, mutated, 0); err != nil {
		res.detail = err.Error()
		return res
	}
	vet := append([]string{"vet", m.pkgOf()}, m.Pkgs...)
	if out, err := goCmd(ctx, dir, vetTimeout, vet...); err != nil {
		res.detail = "does not compile (go vet): " + excerpt(out, err)
		return res
	}
	if r.o.check {
		res.outcome = valid
		return res
	}
	args := []string{"test", "-count=1", "-timeout=" + r.o.timeout.String()}
	if r.o.race {
		args = append(args, "-race")
	}
	args = append(args, m.Pkgs...)
	start := time.Now()
	// go test stops a test binary at -timeout; the margin covers building
	// it, and a go command that hangs anyway is killed.
	out, err := goCmd(ctx, dir, r.o.timeout+vetTimeout, args...)
	res.took = time.Since(start)
	r.saveLog(m, line, args, out)
	switch {
	case ctx.Err() != nil:
		res.detail = "interrupted"
	case err == nil:
		res.outcome = missed
	case buildFailedRE.MatchString(out):
		res.detail = "the tests do not build: " + excerpt(out, err)
	default:
		res.outcome = caught
		res.detail = failures(out, err)
		// A failure of a test that also failed once in the baseline may be
		// that test's flakiness, not the mutation.
		failed := strings.Fields(res.detail)
		for _, p := range m.Pkgs {
			if f, ok := r.flaky[p]; ok && slices.ContainsFunc(strings.Fields(f), func(name string) bool { return slices.Contains(failed, name) }) {
				res.detail += " (suspect: the baseline of " + p + " failed once: " + f + ")"
			}
		}
	}
	return res
}

// baseline tests each package without mutations. A package that fails
// is tested once more: if it then passes, its failures of the first run
// are returned as flaky, else as broken.
func (r *runner) baseline(ctx context.Context, pkgs []string) (broken, flaky map[string]string, err error) {
	dir := filepath.Join(r.work, "baseline")
	if err := fresh(r.snap, dir); err != nil {
		return nil, nil, err
	}
	broken, flaky = map[string]string{}, map[string]string{}
	for _, p := range pkgs {
		if out, err := goCmd(ctx, dir, vetTimeout, "vet", p); err != nil {
			broken[p] = "go vet: " + excerpt(out, err)
			continue
		}
		args := []string{"test", "-count=1", "-timeout=" + r.o.timeout.String()}
		if r.o.race {
			args = append(args, "-race")
		}
		args = append(args, p)
		var first string
		for try := range 2 {
			out, err := goCmd(ctx, dir, r.o.timeout+vetTimeout, args...)
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			switch {
			case err == nil && try == 1:
				flaky[p] = first
			case err == nil:
			case try == 0:
				first = failures(out, err)
				continue
			default:
				broken[p] = failures(out, err)
			}
			break
		}
	}
	return broken, flaky, os.RemoveAll(dir)
}

var (
	// buildFailedRE finds go test's report of a package that did not build.
	buildFailedRE = regexp.MustCompile(`(?m)^FAIL\s+\S+\s+\[(build|setup) failed\]`)
	// failRE finds top-level failed tests.
	failRE = regexp.MustCompile(`(?m)^--- FAIL: (\S+)`)
	// panicRE finds a test binary that panicked or timed out.
	panicRE = regexp.MustCompile(`(?m)^panic: (test timed out.*|.*)$`)
)

// failures names what failed in go test output: the failed tests, or the
// panic.
func failures(out string, err error) string {
	var names []string
	for _, m := range failRE.FindAllStringSubmatch(out, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	switch {
	case len(names) > 4:
		return strings.Join(names[:4], " ") + fmt.Sprintf(" and %d more", len(names)-4)
	case len(names) > 0:
		return strings.Join(names, " ")
	}
	if m := panicRE.FindStringSubmatch(out); m != nil {
		return "panic: " + m[1]
	}
	return excerpt(out, err)
}

// excerpt is the first few lines of out, or err.
func excerpt(out string, err error) string {
	var keep []string
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
		if len(keep) == 2 {
			break
		}
	}
	if len(keep) == 0 {
		return err.Error()
	}
	return strings.Join(keep, " | ")
}

func (r *runner) saveLog(m *mutation, line int, args []string, out string) {
	if r.o.logDir == "" {
		return
	}
	hdr := fmt.Sprintf("mutation %s: %s\n%s:%d\n- %s\n+ %s\ngo %s\n\n", m.ID, m.Desc, m.File, line, m.Line, m.To, strings.Join(args, " "))
	_ = os.WriteFile(filepath.Join(r.o.logDir, m.ID+".log"), []byte(hdr+out), 0o644)
}

// goCmd runs the go tool in dir, at most for limit, and returns its
// combined output. The go command runs in a process group of its own,
// which is SIGKILLed when limit passes or ctx is done: the group id is the
// go command's pid, which nobody else can hold before Wait reaps it.
func goCmd(ctx context.Context, dir string, limit time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A test's helper that escaped the group may hold the output pipe.
	cmd.WaitDelay = 10 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("go %s: killed after %s", args[0], limit)
		buf.WriteString("\npanic: " + err.Error() + "\n")
	}
	return buf.String(), err
}

// snapshot copies the repository at root to dst: the files git lists as
// tracked or untracked-but-not-ignored, or, without git, every file outside
// .git directories.
func snapshot(root, dst string) error {
	files, err := gitFiles(root)
	if err != nil {
		files, err = walkFiles(root)
		if err != nil {
			return err
		}
	}
	for _, rel := range files {
		err := copyFile(filepath.Join(root, rel), filepath.Join(dst, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted in the working tree, still in git's index
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// gitFiles lists the files of the working tree that git does not ignore.
// It only reads.
func gitFiles(root string) ([]string, error) {
	cmd := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var files []string
	for f := range strings.SplitSeq(string(out), "\x00") {
		if f != "" {
			files = append(files, filepath.FromSlash(f))
		}
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

func walkFiles(root string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// fresh replaces dir with a copy of src.
func fresh(src, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	files, err := walkFiles(src)
	if err != nil {
		return err
	}
	for _, rel := range files {
		if err := copyFile(filepath.Join(src, rel), filepath.Join(dir, rel)); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies a regular file (with its permission bits) or a symbolic
// link.
func copyFile(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case !fi.Mode().IsRegular():
		return nil // sockets, FIFOs: nothing a build or test reads
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
