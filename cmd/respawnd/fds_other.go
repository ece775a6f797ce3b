//go:build !linux

package main

func closeOnExecInherited() {}
