//go:build !race

package supervisor

// raceBuild says the tests run under the race detector.
const raceBuild = false
