package restart

import (
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
)

// ResolveCommand returns the absolute path, with symbolic links resolved,
// of the executable that argv0 names: looked up in respawnd's PATH when it
// has no slash, relative to dir (or respawnd's working directory) when it
// is relative. It is what /proc/PID/exe shows for a process started from
// argv0 that has not exec'd anything else since.
func ResolveCommand(argv0, dir string) (string, error) {
	if argv0 == "" {
		return "", ErrNoCommand
	}
	path := argv0
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				err = fmt.Errorf("%w (%w)", err, fs.ErrNotExist)
			}
			return "", err
		}
		path = p
	}
	if !filepath.IsAbs(path) && dir != "" {
		path = filepath.Join(dir, path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}
