package api_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/respawnd/respawnd/api"
)

// clientEnv makes the test binary act as a control-socket client of the
// socket it names: it prints the outcome of listing the programs.
const clientEnv = "RESPAWND_API_TEST_CLIENT"

func TestMain(m *testing.M) {
	if path := os.Getenv(clientEnv); path != "" {
		os.Exit(runClient(path))
	}
	goleak.VerifyTestMain(m)
}

func runClient(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := api.NewClient(path).Programs(ctx)
	switch {
	case err == nil:
		fmt.Fprintln(os.Stdout, "allowed")
	case errors.Is(err, api.ErrPermission):
		fmt.Fprintln(os.Stdout, "permission:", err)
	default:
		fmt.Fprintln(os.Stdout, "error:", err)
	}
	return 0
}
