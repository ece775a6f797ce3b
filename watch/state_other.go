//go:build !linux

package watch

// renameNoReplace returns ErrUnsupported: OpenStateDir needs Linux.
func renameNoReplace(int, string, string) error { return ErrUnsupported }
