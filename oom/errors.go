package oom

import "errors"

// ErrUnsupported is wrapped into the errors of the live sources (Kmsg,
// ReadRetained, CgroupWatcher) on systems other than Linux.
var ErrUnsupported = errors.New("oom: not supported on this system")
