//go:build !linux

package main

import "testing"

// testCgroup gives no cgroup: there are none outside Linux.
func testCgroup(testing.TB) string { return "" }
