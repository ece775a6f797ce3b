package memwatch

import (
	"os"
	"testing"

	"github.com/respawnd/respawnd/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.RunHelperIfRequested()
	runGrowerIfRequested()
	os.Exit(m.Run())
}
