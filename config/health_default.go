package config

// DefaultHealth returns a health section with every optional setting at its
// default and no probe. Code that builds a Program starts from it and sets
// exactly one of HTTP, TCP and Exec; an HTTPProbe built in code needs
// ExpectStatus too (DefaultStatusRange).
func DefaultHealth() Health {
	return Health{
		Period:   DefaultHealthPeriod,
		Timeout:  DefaultHealthTimeout,
		Failures: DefaultHealthFailures,
	}
}

// DefaultNotify returns a notify section with StartTimeout at its default
// and neither Ready nor Watchdog set, which Validate refuses as having no
// effect: code that builds a Program sets one of them or both.
func DefaultNotify() Notify {
	return Notify{StartTimeout: DefaultStartTimeout}
}
