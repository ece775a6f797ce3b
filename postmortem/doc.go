// Package postmortem keeps a death record for every exit of a supervised
// program: why it ended, what its memory looked like, what the host looked
// like, and the last lines it printed. Records are written by one goroutine
// off the restart path, kept in a size-capped directory of the state
// directory so that they outlive respawnd's own restarts, and read back for
// `respawnd why` and the API.
package postmortem
