package oom

import (
	"bytes"
	"time"
)

// This file is the assembler layer: it turns records into Kill values. The
// kernel reports one OOM kill over several printk calls (mm/oom_kill.c):
//
//	Linux < 4.19   "Task in X killed as a result of limit of Y" (memcg OOMs,
//	               from mem_cgroup_print_oom_info), then "[Memory cgroup ]Out
//	               of memory: Kill process N (comm) score S or sacrifice
//	               child", then "Killed process M (comm) total-vm:…".
//	Linux 4.19     adds "oom-kill:constraint=…,task_memcg=…,task=…,pid=…,uid=…"
//	               (dump_oom_summary) before the kill lines.
//	Linux 5.0+     the two kill lines became one: "[Memory cgroup ]Out of
//	               memory: Killed process N (comm) total-vm:…" (commit
//	               "mm, oom: remove 'prefer children over parent' heuristic"),
//	               later extended with UID, pgtables (5.1) and oom_score_adj.
//	Linux 4.6+     "oom_reaper: reaped process N (comm), now anon-rss:…" may
//	               follow once the reaper freed the victim's memory.
//
// Only "Killed process" proves a death: it is printed after SIGKILL was sent,
// and it is never rate-limited, while the dump (including the oom-kill: and
// "Task in" lines) is. Before 5.0 the victim named by "Kill process" could
// hand the kill to a child, so the pid is taken from "Killed process" only.

const (
	// maxPending bounds the oom-kill: lines waiting for their Killed process
	// line. The kernel prints the pair back to back under oom_lock, so a few
	// entries suffice even for duplicate or interleaved streams.
	maxPending = 16
	// maxRecent bounds the kills remembered for dropping duplicates.
	maxRecent = 64
	// staleAfter is how far apart (in kernel or wall time) a dump line and
	// its Killed process line may be and still belong to one kill.
	staleAfter = 5 * time.Second
)

// stamp is the time evidence of one record.
type stamp struct {
	boot    time.Duration
	hasBoot bool
	wall    time.Time
	hasWall bool
	seq     uint64
	hasSeq  bool
}

func (s stamp) near(o stamp, d time.Duration) bool {
	if s.hasBoot && o.hasBoot && absDur(s.boot-o.boot) > d {
		return false
	}
	if s.hasWall && o.hasWall && absDur(s.wall.Sub(o.wall)) > d {
		return false
	}
	return true
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// summary is a parsed oom-kill: line.
type summary struct {
	pid                 int
	comm                string
	constraint          string
	oomMemcg, taskMemcg string
	uid                 *int
	at                  stamp
}

// legacyMemcg is a parsed "Task in X killed as a result of limit of Y" line.
type legacyMemcg struct {
	task, limit string
	at          stamp
}

type recentKill struct {
	pid     int
	comm    string
	totalVM int64
	anonRSS int64
	at      stamp
}

// assembler holds the state between records. It is not safe for
// concurrent use; each stream has its own.
type assembler struct {
	now func() time.Time
	loc *time.Location

	pending []summary
	legacy  *legacyMemcg
	recent  [maxRecent]recentKill
	nRecent int

	// onReap, if set, is told about oom_reaper lines: whether the pid is a
	// kill this assembler reported. It never produces a Kill.
	onReap func(pid int, comm string, known bool)
}

func newAssembler(now func() time.Time, loc *time.Location) *assembler {
	if now == nil {
		now = time.Now
	}
	if loc == nil {
		loc = time.Local
	}
	return &assembler{now: now, loc: loc}
}

var (
	pfxKilled    = []byte("Killed process ")
	pfxOOM       = []byte("Out of memory")
	pfxMemcgOOM  = []byte("Memory cgroup out of memory: ")
	pfxSummary   = []byte("oom-kill:")
	pfxReaper    = []byte("oom_reaper: reaped process ")
	pfxTaskIn    = []byte("Task in ")
	sepLimitOf   = []byte(" killed as a result of limit of ")
	sepInvoked   = []byte(" invoked oom-killer: ")
	pfxNoVictims = []byte("Out of memory and no killable processes")
)

// add feeds one record and returns the Kill it completes, if any.
func (a *assembler) add(r *record) (Kill, bool) {
	msg := r.msg
	if len(msg) < 8 || r.userFacility {
		return Kill{}, false
	}
	// Cheap dispatch on the first byte: nearly every line is chatter.
	switch msg[0] {
	case 'K':
		if bytes.HasPrefix(msg, pfxKilled) {
			return a.killed(r, msg[len(pfxKilled):])
		}
	case 'O':
		if !bytes.HasPrefix(msg, pfxOOM) {
			break
		}
		if bytes.HasPrefix(msg, pfxNoVictims) {
			a.legacy = nil
			break
		}
		// "Out of memory: Killed process" and, with the
		// oom_kill_allocating_task sysctl, "Out of memory
		// (oom_kill_allocating_task): Killed process".
		if c := bytes.IndexByte(msg, ':'); c > 0 && c < 64 && bytes.HasPrefix(msg[c+1:], []byte(" ")) &&
			bytes.HasPrefix(msg[c+2:], pfxKilled) {
			return a.killed(r, msg[c+2+len(pfxKilled):])
		}
	case 'M':
		if bytes.HasPrefix(msg, pfxMemcgOOM) && bytes.HasPrefix(msg[len(pfxMemcgOOM):], pfxKilled) {
			return a.killed(r, msg[len(pfxMemcgOOM)+len(pfxKilled):])
		}
	case 'o':
		if bytes.HasPrefix(msg, pfxSummary) {
			a.summary(r, msg[len(pfxSummary):])
		} else if bytes.HasPrefix(msg, pfxReaper) {
			a.reaped(r, msg[len(pfxReaper):])
		}
	case 'T':
		if bytes.HasPrefix(msg, pfxTaskIn) {
			if task, limit, ok := bytes.Cut(msg[len(pfxTaskIn):], sepLimitOf); ok {
				a.legacy = &legacyMemcg{task: a.text(r, task), limit: a.text(r, limit), at: a.stamp(r)}
			}
		}
	}
	// A new OOM invocation ends any unconsumed "Task in" line: it belonged
	// to an OOM that killed nothing. Only searched while one is held.
	if a.legacy != nil && msg[0] != 'T' && bytes.Contains(msg, sepInvoked) {
		a.legacy = nil
	}
	return Kill{}, false
}

// stamp decodes the record's time evidence.
func (a *assembler) stamp(r *record) stamp {
	var s stamp
	s.boot, s.hasBoot = r.boot()
	s.wall, s.hasWall = r.wall(a.now(), a.loc)
	s.seq, s.hasSeq = r.seq, r.hasSeq
	return s
}

// text converts message bytes to a string, undoing /dev/kmsg's escaping:
// the kernel writes bytes < 0x20, >= 0x7f and '\' as \xNN in kmsg records
// (msg_print_ext_body, Linux 3.5+), whereas dmesg and syslog show them raw.
func (a *assembler) text(r *record, b []byte) string {
	if !r.hasSeq || bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+3 < len(b) && b[i+1] == 'x' {
			hi, ok1 := unhex(b[i+2])
			lo, ok2 := unhex(b[i+3])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// killed handles the text after "Killed process ":
//
//	N (comm) total-vm:XkB, anon-rss:XkB, file-rss:XkB[, shmem-rss:XkB][, UID:U pgtables:XkB oom_score_adj:A]
//	N (comm), UID U, total-vm:XkB, …   (RHEL 7 kernels)
//
// The comm may contain spaces and parentheses, so it ends at the last ") "
// before the known tail; the tail itself has no parentheses.
func (a *assembler) killed(r *record, rest []byte) (Kill, bool) {
	pid, n := leadingInt(rest)
	// "N (" proves the pid is complete; a line cut inside the number could
	// name another process.
	if pid <= 0 || !bytes.HasPrefix(rest[n:], []byte(" (")) {
		return Kill{}, false
	}
	k := Kill{PID: pid}
	body := rest[n+2:]
	var tail []byte
	if i := bytes.LastIndex(body, []byte(") total-vm:")); i >= 0 {
		k.Comm, tail = a.text(r, body[:i]), body[i+2:]
	} else if i := bytes.LastIndex(body, []byte("), UID ")); i >= 0 {
		k.Comm, tail = a.text(r, body[:i]), body[i+3:]
	}
	parseKillTail(&k, tail)

	at := a.stamp(r)
	k.Boot = at.boot
	if at.hasWall {
		k.Time = at.wall
	}
	if a.duplicate(&k, at) {
		a.takeSummary(&k, at) // drop the duplicate's own summary line
		return Kill{}, false
	}
	if !a.takeSummary(&k, at) {
		if l := a.legacy; l != nil && l.at.near(at, staleAfter) {
			k.TaskMemcg, k.OOMMemcg = l.task, l.limit
		}
	}
	a.legacy = nil
	a.remember(&k, at)
	return k, true
}

// parseKillTail reads the key:value fields after the comm. Sizes must end in
// "kB": a value cut short by a truncated line is dropped, not guessed.
func parseKillTail(k *Kill, tail []byte) {
	for len(tail) > 0 {
		var tok []byte
		tok, tail = nextField(tail)
		key, val, ok := bytes.Cut(tok, []byte{':'})
		if !ok {
			// RHEL 7: "UID 0,".
			if string(tok) == "UID" {
				tok, tail = nextField(tail)
				if v, ok := fullInt(tok); ok {
					k.UID = &v
				}
			}
			continue
		}
		switch string(key) {
		case "total-vm":
			k.TotalVMBytes = kB(val)
		case "anon-rss":
			k.AnonRSSBytes = kB(val)
		case "file-rss":
			k.FileRSSBytes = kB(val)
		case "shmem-rss":
			k.ShmemRSSBytes = kB(val)
		case "pgtables":
			k.PgtablesBytes = kB(val)
		case "UID":
			if v, ok := fullInt(val); ok {
				k.UID = &v
			}
		case "oom_score_adj":
			if v, ok := fullInt(val); ok && v >= -1000 && v <= 1000 {
				k.OOMScoreAdj = &v
			}
		}
	}
}

// nextField returns the next space-separated field without a trailing comma.
func nextField(b []byte) (field, rest []byte) {
	b = bytes.TrimLeft(b, " ")
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		field, rest = b, nil
	} else {
		field, rest = b[:i], b[i+1:]
	}
	return bytes.TrimSuffix(field, []byte{','}), rest
}

func kB(v []byte) *int64 {
	num, ok := bytes.CutSuffix(v, []byte("kB"))
	if !ok {
		return nil
	}
	n, ok := parseUint(num)
	if !ok || n > 1<<53 {
		return nil
	}
	b := int64(n) * 1024
	return &b
}

// leadingInt parses the decimal digits at the start of b.
func leadingInt(b []byte) (int, int) {
	n, i := 0, 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 10 {
		n = n*10 + int(b[i]-'0')
		i++
	}
	if i == 0 || i < len(b) && b[i] >= '0' && b[i] <= '9' {
		return 0, 0
	}
	return n, i
}

// fullInt parses a whole (possibly negative) decimal number.
func fullInt(b []byte) (int, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	n, i := leadingInt(b)
	if i == 0 || i != len(b) {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// summary handles the text after "oom-kill:" (Linux 4.19+, dump_oom_summary):
//
//	constraint=C,nodemask=N,cpuset=S,mems_allowed=M,oom_memcg=P,task_memcg=Q,task=comm,pid=N,uid=U
//
// with "global_oom" in place of "oom_memcg=P" for a system-wide OOM. Paths and
// the comm may contain commas, so the fixed keys are found from the right.
func (a *assembler) summary(r *record, b []byte) {
	ui := bytes.LastIndex(b, []byte(",uid="))
	end := len(b)
	var uid *int
	if ui >= 0 {
		if v, ok := fullInt(b[ui+5:]); ok {
			uid = &v
		}
		end = ui
	}
	pi := bytes.LastIndex(b[:end], []byte(",pid="))
	if pi < 0 {
		return
	}
	pid, ok := fullInt(b[pi+5 : end])
	if !ok || pid <= 0 {
		return
	}
	s := summary{pid: pid, uid: uid, at: a.stamp(r)}
	ti := bytes.LastIndex(b[:pi], []byte(",task="))
	if ti >= 0 {
		s.comm = a.text(r, b[ti+6:pi])
		if mi := bytes.LastIndex(b[:ti], []byte(",task_memcg=")); mi >= 0 {
			s.taskMemcg = a.text(r, b[mi+12:ti])
			if oi := bytes.LastIndex(b[:mi], []byte(",oom_memcg=")); oi >= 0 {
				s.oomMemcg = a.text(r, b[oi+11:mi])
			}
		}
	}
	if c, ok := bytes.CutPrefix(b, []byte("constraint=")); ok {
		if i := bytes.IndexByte(c, ','); i >= 0 {
			c = c[:i]
		}
		s.constraint = string(c)
	}
	// A newer line for the same pid replaces an older one.
	for i := range a.pending {
		if a.pending[i].pid == pid {
			a.pending = append(a.pending[:i], a.pending[i+1:]...)
			break
		}
	}
	if len(a.pending) == maxPending {
		a.pending = append(a.pending[:0], a.pending[1:]...)
	}
	a.pending = append(a.pending, s)
}

// takeSummary merges and removes the pending oom-kill: line of k's pid.
func (a *assembler) takeSummary(k *Kill, at stamp) bool {
	for i := len(a.pending) - 1; i >= 0; i-- {
		s := a.pending[i]
		if s.pid != k.PID {
			continue
		}
		a.pending = append(a.pending[:i], a.pending[i+1:]...)
		if !s.at.near(at, staleAfter) || (s.comm != "" && k.Comm != "" && s.comm != k.Comm) {
			return false
		}
		k.Constraint, k.OOMMemcg, k.TaskMemcg = s.constraint, s.oomMemcg, s.taskMemcg
		if k.UID == nil {
			k.UID = s.uid
		}
		if k.Comm == "" {
			k.Comm = s.comm
		}
		return true
	}
	return false
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// duplicate reports whether k was already emitted: the same record read twice,
// or one kill seen through two sources (kmsg and syslog) in one stream.
func (a *assembler) duplicate(k *Kill, at stamp) bool {
	for i := 0; i < a.nRecent && i < maxRecent; i++ {
		p := &a.recent[i]
		// A field missing on one side (a truncated copy) does not conflict.
		if p.pid != k.PID || !compatible(p.comm, k.Comm, "") ||
			!compatible(p.totalVM, deref(k.TotalVMBytes), -1) || !compatible(p.anonRSS, deref(k.AnonRSSBytes), -1) {
			continue
		}
		if p.at.hasSeq && at.hasSeq && p.at.seq != at.seq {
			continue
		}
		// One second covers syslog's rounding of the boot stamp; a minute
		// covers dmesg -T's drift against the syslog clock. A pid reused
		// and killed again with identical sizes inside these bounds is not
		// worth telling apart.
		if p.at.hasBoot && at.hasBoot && absDur(p.at.boot-at.boot) > time.Second {
			continue
		}
		if p.at.hasWall && at.hasWall && absDur(p.at.wall.Sub(at.wall)) > time.Minute {
			continue
		}
		return true
	}
	return false
}

func compatible[T comparable](a, b, missing T) bool {
	return a == b || a == missing || b == missing
}

func (a *assembler) remember(k *Kill, at stamp) {
	a.recent[a.nRecent%maxRecent] = recentKill{pid: k.PID, comm: k.Comm, totalVM: deref(k.TotalVMBytes), anonRSS: deref(k.AnonRSSBytes), at: at}
	a.nRecent++
}

// reaped handles "oom_reaper: reaped process N (comm), now anon-rss:…". It
// confirms a kill already reported; it is never a kill of its own.
func (a *assembler) reaped(r *record, rest []byte) {
	if a.onReap == nil {
		return
	}
	pid, n := leadingInt(rest)
	if pid <= 0 || !bytes.HasPrefix(rest[n:], []byte(" (")) {
		return
	}
	var comm string
	if i := bytes.LastIndex(rest, []byte("), now ")); i > n+2 {
		comm = a.text(r, rest[n+2:i])
	}
	known := false
	for i := 0; i < a.nRecent && i < maxRecent; i++ {
		if a.recent[i].pid == pid {
			known = true
			break
		}
	}
	a.onReap(pid, comm, known)
}
