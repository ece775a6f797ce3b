package oom

import (
	"os"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.RunHelperIfRequested()
	os.Exit(m.Run())
}
