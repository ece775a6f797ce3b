//go:build race

package cgroup

// raceBuild says the tests run under the race detector.
const raceBuild = true
