// Package config owns respawnd's configuration file: the YAML schema, a strict
// decoder that reports every problem with its line, the defaults for every
// optional setting, and validation of configurations built in code (for
// example by `respawnd exec` from flags).
//
// Load reads one file and Parse decodes bytes; neither does any other I/O.
// Users, groups, commands and directories named in a configuration are not
// looked up: whether they exist is decided when a program starts, not when
// its configuration is read. The same holds for a program's match: this
// package checks its syntax (an absolute exe, a cmdline that compiles, a
// comm the kernel can hold) but finds no processes, and for a health
// probe's URL and address: their syntax is checked, no name is resolved and
// nothing is dialled.
//
// Every value has a lower and an upper bound (MinMemory, MaxFileSize,
// MaxPrograms, MaxLimitBurst and the other Max constants), each far beyond
// what a deployment needs, so that whatever this package accepts can run in
// bounded memory and time. Load reads at most MaxFileSize bytes.
//
// A failed Load, Parse or Validate returns an error built with errors.Join
// from one *Error per problem; Errors lists them. Each prints as
//
//	FILE:LINE: field: message
//
// for example
//
//	demo.yaml:14: programs[1].restart.backoff.max: must not be less than backoff.initial (1m0s)
//
// The types in this package are plain values with no internal locking; a
// Config that is no longer modified may be read from many goroutines.
package config
