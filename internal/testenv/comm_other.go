//go:build !linux

package testenv

import "errors"

func setComm(string) error { return errors.New("setting the process name needs Linux") }
