package config

import (
	"fmt"
	"strings"
)

// summaryNames is how many program names Summary lists before it counts the
// rest.
const summaryNames = 10

// Summary returns the one-line verdict `respawnd check` prints for a
// configuration that Load, Parse or Validate accepted, such as
// "demo.yaml: 3 programs (api, worker, cron) OK".
func (c *Config) Summary() string {
	file := c.File
	if file == "" {
		file = "config"
	}
	n := len(c.Programs)
	noun := "programs"
	if n == 1 {
		noun = "program"
	}
	if n == 0 {
		return fmt.Sprintf("%s: 0 programs OK", file)
	}
	names := make([]string, 0, min(n, summaryNames)+1)
	for i := range min(n, summaryNames) {
		names = append(names, c.Programs[i].Name)
	}
	if n > summaryNames {
		names = append(names, fmt.Sprintf("and %d more", n-summaryNames))
	}
	return fmt.Sprintf("%s: %d %s (%s) OK", file, n, noun, strings.Join(names, ", "))
}
