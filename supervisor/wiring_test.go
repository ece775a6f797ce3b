package supervisor

import (
	"slices"
	"testing"
	"time"

	"github.com/respawnd/respawnd/config"
	"github.com/respawnd/respawnd/internal/testenv"
	"github.com/respawnd/respawnd/oom"
)

// Every field of a definition reaches the launcher.
func TestDefinitionReachesLauncher(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Env = []string{"PATH=/bin"} })
	h.apply(prog("p", func(p *config.Program) {
		p.Command = []string{"/bin/p", "--flag"}
		p.Dir = "/srv/p"
		p.User, p.Group = "www-data", "adm"
		p.Output.File = "/var/log/p.log"
		p.Env = map[string]string{"B": "2", "A": "1"}
	}))
	h.waitStarts(1)
	cmd := h.launcher.last().cmd
	if !slices.Equal(cmd.Argv, []string{"/bin/p", "--flag"}) || cmd.Dir != "/srv/p" || cmd.User != "www-data" || cmd.Group != "adm" || cmd.Name != "p" {
		t.Errorf("command %+v", cmd)
	}
	if cmd.OutputFile != "/var/log/p.log" {
		t.Errorf("output file %q, want /var/log/p.log", cmd.OutputFile)
	}
	if !slices.Equal(cmd.Env, []string{"PATH=/bin", "A=1", "B=2"}) {
		t.Errorf("env %v, want the inherited env, then the program's sorted", cmd.Env)
	}
	if !cmd.KillGroupOnExit {
		t.Error("KillGroupOnExit not set: a crashed program's group would outlive it")
	}
}

// An on-oom program whose SIGKILL waits for the kernel's report restarts
// only if the report comes and says OOM kill.
func TestOnOOMLateDecision(t *testing.T) {
	for _, report := range []bool{true, false} {
		host := uint64(0)
		h := newHarness(t, func(c *Config) {
			c.KernelLog = true
			c.HostOOMKills = func() (uint64, error) { return host, nil }
		})
		h.apply(prog("p", func(p *config.Program) { p.Restart.Policy = config.PolicyOnOOM }))
		st := h.waitState("p", StateRunning)
		host = 1 // another OOM kill somewhere: not final at wait time
		h.launcher.last().die(sigkill)
		h.waitState("p", StateExited)
		if report {
			h.sup.OOMKill(h.ctx, oom.Kill{PID: st.PID})
			h.waitStarts(2)
			continue
		}
		testenv.Eventually(t, "the window to close", func() bool {
			h.clock.Advance(500 * time.Millisecond)
			return len(h.rec.exitList()) == 1
		})
		// The decision is made with the exit, in the same step of the loop.
		h.sync()
		if e := h.rec.exitList()[0]; e.Reason == ReasonOOMKill {
			t.Errorf("exit %v without a report", e.Describe())
		}
		if n := h.launcher.started(); n != 1 {
			t.Errorf("on-oom program restarted (%d starts) without an OOM kill", n)
		}
		if s := h.status("p").State; s != StateExited {
			t.Errorf("state %v, want exited", s)
		}
	}
}

// A recorded instance that died while respawnd was down is an OOM kill when
// the kernel's retained buffer still reports it, unknown otherwise.
func TestDiedWhileDownUsesRetainedReports(t *testing.T) {
	for _, retained := range []bool{true, false} {
		src := newFakeSource(newFakeClock())
		h := newHarness(t, withSource(src, map[string]Instance{"api": {Program: "api", PID: 4321, StartTime: 7, Generation: 3, Child: true}}), func(c *Config) {
			c.Retained = func() ([]oom.Kill, error) {
				if !retained {
					return []oom.Kill{{PID: 9999}}, nil
				}
				return []oom.Kill{{PID: 9999}, {PID: 4321, Comm: "api"}}, nil
			}
		})
		h.apply(prog("api"))
		h.waitStarts(1)
		testenv.Eventually(t, "the exit", func() bool { return len(h.rec.exitList()) == 1 })
		e := h.rec.exitList()[0]
		want := ReasonUnknown
		if retained {
			want = ReasonOOMKill
		}
		if e.Reason != want || e.PID != 4321 || e.Generation != 3 {
			t.Errorf("retained=%v: exit %v pid %d generation %d, want %v of 4321 generation 3", retained, e.Describe(), e.PID, e.Generation, want)
		}
		if st := h.waitState("api", StateRunning); st.Generation != 4 || st.Restarts != 1 {
			t.Errorf("generation %d restarts %d, want 4 and 1", st.Generation, st.Restarts)
		}
	}
}

// The state writer waits at least the debounce, and ten times what the
// last write cost when that is more: with a thousand programs a write
// costs milliseconds, and a restart loop must not turn into a write loop.
func TestStateDelayBoundsTheWriterShare(t *testing.T) {
	for _, tc := range []struct{ last, want time.Duration }{
		{0, stateDebounce},
		{time.Millisecond, stateDebounce},
		{2 * time.Millisecond, stateDebounce},
		{3 * time.Millisecond, 30 * time.Millisecond},
		{50 * time.Millisecond, 500 * time.Millisecond},
	} {
		if got := stateDelay(tc.last); got != tc.want {
			t.Errorf("stateDelay(%v) = %v, want %v", tc.last, got, tc.want)
		}
	}
}
