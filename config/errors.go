package config

import (
	"errors"
	"strconv"
)

// Error is one problem in a configuration. Load, Parse and Validate return
// every problem they find as one error built with errors.Join from *Error
// values; use Errors to list them.
type Error struct {
	// File is the configuration file's path, or "" for a Config built in
	// code.
	File string
	// Line is the 1-based line of the offending key or list entry, or 0
	// when it is not known.
	Line int
	// Field is the path of the offending setting, such as
	// "programs[1].restart.backoff.max" or "limits.restart_burst". Keys
	// that are not plain words are quoted, as in `programs[0].env["A=B"]`.
	// Problems with the YAML text itself use the field "yaml", and problems
	// with the document as a whole use "config".
	Field string
	// Msg says what is wrong, in lower case and without a trailing period.
	Msg string
}

// Error formats e as "FILE:LINE: field: message". The "FILE:" part is left
// out when File is empty and the ":LINE" part when Line is 0.
func (e *Error) Error() string {
	var b []byte
	b = append(b, e.File...)
	if e.Line > 0 {
		if e.File != "" {
			b = append(b, ':')
		}
		b = strconv.AppendInt(b, int64(e.Line), 10)
	}
	if len(b) > 0 {
		b = append(b, ": "...)
	}
	b = append(b, e.Field...)
	b = append(b, ": "...)
	b = append(b, e.Msg...)
	return string(b)
}

// Errors returns the *Error values in err, in the order they were reported
// (by line for Load and Parse). It looks through errors.Join and wrapping,
// and returns nil when err holds none.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch x := err.(type) { //nolint:errorlint // walking the tree by hand
		case nil:
		case *Error:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				walk(e)
			}
		default:
			walk(errors.Unwrap(err))
		}
	}
	walk(err)
	return out
}

// join returns nil when errs is empty, and otherwise errors.Join of errs.
func join(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}
