//go:build linux

package notify

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// notifyprog is the path of internal/notifyprog, built once by TestMain.
var notifyprog string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "notify-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	notifyprog = filepath.Join(dir, "notifyprog")
	cmd := exec.Command("go", "build", "-o", notifyprog, "github.com/respawnd/respawnd/internal/notifyprog")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building notifyprog:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
