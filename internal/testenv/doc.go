// Package testenv holds test-only helpers: skips for privileged tests that
// turn into failures when RESPAWND_REQUIRE_ROOT_TESTS=1, memory cgroups for
// victims, and the helper-process pattern (the test binary re-executes itself
// as a small program that sleeps, exits, crashes, forks or allocates).
//
// Nothing here is used by production code.
package testenv
