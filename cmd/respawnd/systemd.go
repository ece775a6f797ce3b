package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// The sd_notify messages respawnd sends when it runs as a Type=notify
// systemd service; without NOTIFY_SOCKET they go nowhere.
const (
	sdReady    = sd.SdNotifyReady
	sdStopping = sd.SdNotifyStopping
)

// sdReloading is RELOADING=1 with the monotonic timestamp systemd 253+
// wants for Type=notify-reload (older versions ignore it).
func sdReloading() string {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("%s\nMONOTONIC_USEC=%d", sd.SdNotifyReloading, ts.Nano()/1000)
}

func notify(logger *slog.Logger, state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		logger.Warn("notifying systemd", "state", strings.SplitN(state, "\n", 2)[0], "err", err)
	}
}

// watchdog sends WATCHDOG=1 at half the interval systemd asked for
// (WatchdogSec=) until ctx is done, but only while h says the supervisor
// is healthy: a wedged respawnd is then restarted by systemd. Without a
// watchdog it returns at once.
func watchdog(ctx context.Context, logger *slog.Logger, h *health) error {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil {
		logger.Warn("reading the systemd watchdog settings", "err", err)
		return nil
	}
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		if h.ok() {
			notify(logger, sd.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ownOOMScoreAdj is respawnd's own oom_score_adj (0 when unreadable).
func ownOOMScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
