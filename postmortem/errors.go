package postmortem

import "errors"

// ErrNotFound is returned for a record that does not exist (or no longer
// does: the oldest are dropped to keep the size cap).
var ErrNotFound = errors.New("postmortem: no such death record")

// ErrBadID is returned for a record ID that respawnd never makes.
var ErrBadID = errors.New("postmortem: malformed death record id")
