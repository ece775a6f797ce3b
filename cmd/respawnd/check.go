package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/respawnd/respawnd/config"
)

// runCheck validates a configuration file: every error on its own line,
// exit status 1; or a one-line summary and exit status 0.
func runCheck(file string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(file)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, cfg.Summary())
	return 0
}

// printConfigErrors prints each joined error on its own line.
func printConfigErrors(w io.Writer, err error) {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			printConfigErrors(w, e)
		}
		return
	}
	fmt.Fprintln(w, strings.TrimSpace(err.Error()))
}
