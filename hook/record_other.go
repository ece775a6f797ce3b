//go:build !linux

package hook

import (
	"errors"
	"os"
)

// errUnsupported is returned where memfds are needed outside Linux.
var errUnsupported = errors.New("hook: sealed records need Linux")

// sealedRecord returns errUnsupported: memfds are Linux's.
func sealedRecord([]byte) (*os.File, error) { return nil, errUnsupported }
