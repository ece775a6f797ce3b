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
//
// An oom-kill: line names the victim the kernel chose, but the kill itself
// can still fail to happen: __oom_kill_process prints "OOM victim N (comm)
// is already exiting. Skip killing the task" instead. Text filtered with grep
// often keeps the oom-kill: line and loses the Killed process line, so Scan
// (and only Scan) reports a summary left without its Killed process line as
// a Kill with Confirmed false. The kernel prints one OOM kill under oom_lock,
// so a summary is left alone once its OOM is over: at the next summary of
// another pid, the next "invoked oom-killer" line, a Killed process line of
// another pid, or the end of the text. The live follower never reports one.

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
	nodemask, cpuset    string
	memsAllowed         string
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
	// sumSeq is the kmsg sequence number of the oom-kill: line merged
	// into the kill, so that a second copy of that line alone is known.
	sumSeq    uint64
	hasSumSeq bool
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
	// named is the pid of the last "Kill process N" line (Linux < 5.0): a
	// victim that may hand its death to a child, so its summary is not a
	// kill of its own.
	named int

	// unconfirmed makes the assembler report summaries left without their
	// Killed process line (Scan). The live follower leaves it false.
	unconfirmed bool
	// out holds the kills completed by one call of add or finish.
	out []Kill

	// stats is the latest "Memory cgroup stats for" block, for the kill
	// that follows it.
	stats *memcgStats

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
	pfxKill      = []byte("Kill process ")
	pfxVictim    = []byte("OOM victim ")
	pfxOOM       = []byte("Out of memory")
	pfxMemcgOOM  = []byte("Memory cgroup out of memory: ")
	pfxSummary   = []byte("oom-kill:")
	pfxReaper    = []byte("oom_reaper: reaped process ")
	pfxTaskIn    = []byte("Task in ")
	sepLimitOf   = []byte(" killed as a result of limit of ")
	sepInvoked   = []byte(" invoked oom-killer: ")
	pfxNoVictims = []byte("Out of memory and no killable processes")
)

// memcgStats is a "Memory cgroup stats for PATH:" block of an OOM report
// (mem_cgroup_print_oom_meminfo): the memory.stat of the cgroup whose limit
// was hit, one "key value" line each.
type memcgStats struct {
	path string
	at   stamp
	// keys holds the keys, each ended by a newline, and vals their values,
	// in order: a block costs no allocation per line, and a map is made
	// only for the kill it goes with.
	keys []byte
	vals []uint64
	open bool // lines of the block may still come
}

func (st *memcgStats) add(key []byte, v uint64) {
	if len(st.vals) < maxStatKeys {
		st.keys = append(append(st.keys, key...), '\n')
		st.vals = append(st.vals, v)
	}
}

// m returns the block as a map.
func (st *memcgStats) m() map[string]uint64 {
	out := make(map[string]uint64, len(st.vals))
	keys := st.keys
	for _, v := range st.vals {
		i := bytes.IndexByte(keys, '\n')
		out[string(keys[:i])] = v
		keys = keys[i+1:]
	}
	return out
}

// maxStatKeys bounds one block: memory.stat has about 60 keys on v1, 50 on
// v2.
const maxStatKeys = 128

var pfxMemcgStats = []byte("Memory cgroup stats for ")

// add feeds one record and returns the kills it completes, in order. The
// slice is only valid until the next call.
func (a *assembler) add(r *record) []Kill {
	a.out = a.out[:0]
	msg := r.msg
	if r.userFacility {
		return nil
	}
	// closing says msg ends the stats block before it: a header right
	// there is a child cgroup's block (v1), not a new report's.
	closing := false
	if a.stats != nil && a.stats.open {
		if a.statLine(msg) {
			return nil
		}
		a.stats.open, closing = false, true
	}
	if len(msg) < 8 {
		return nil
	}
	// Cheap dispatch on the first byte: nearly every line is chatter.
	switch msg[0] {
	case 'K':
		if bytes.HasPrefix(msg, pfxKilled) {
			a.killed(r, msg[len(pfxKilled):])
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
		if c := bytes.IndexByte(msg, ':'); c > 0 && c < 64 && bytes.HasPrefix(msg[c+1:], []byte(" ")) {
			a.afterOOM(r, msg[c+2:])
		}
	case 'M':
		if bytes.HasPrefix(msg, pfxMemcgOOM) {
			a.afterOOM(r, msg[len(pfxMemcgOOM):])
		} else if rest, ok := bytes.CutPrefix(msg, pfxMemcgStats); ok {
			a.statsHeader(r, rest, closing)
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
	// A new OOM invocation ends any unconsumed "Task in" or oom-kill: line:
	// it belonged to an OOM that killed nothing, or whose Killed process
	// line is missing. Only searched while one is held.
	if (a.legacy != nil || len(a.pending) > 0 || a.stats != nil) && !bytes.HasPrefix(msg, pfxTaskIn) && bytes.Contains(msg, sepInvoked) {
		a.legacy = nil
		a.stats = nil
		a.flushPending(0)
	}
	return a.out
}

// afterOOM handles what follows "Out of memory: " or "Memory cgroup out of
// memory: ": a kill, the pre-5.0 choice of a victim, or a victim that was
// exiting anyway and is not killed.
func (a *assembler) afterOOM(r *record, rest []byte) {
	switch {
	case bytes.HasPrefix(rest, pfxKilled):
		a.killed(r, rest[len(pfxKilled):])
	case bytes.HasPrefix(rest, pfxKill):
		if pid, n := leadingInt(rest[len(pfxKill):]); pid > 0 && bytes.HasPrefix(rest[len(pfxKill)+n:], []byte(" (")) {
			a.named = pid
		}
	case bytes.HasPrefix(rest, pfxVictim) && len(a.pending) > 0:
		// "OOM victim N (comm) is already exiting. Skip killing the task"
		// (__oom_kill_process, Linux 4.19+): the summary was no kill.
		if pid, n := leadingInt(rest[len(pfxVictim):]); pid > 0 && bytes.HasPrefix(rest[len(pfxVictim)+n:], []byte(" (")) {
			for i := range a.pending {
				if a.pending[i].pid == pid {
					a.pending = append(a.pending[:i], a.pending[i+1:]...)
					break
				}
			}
		}
	}
}

// finish ends the stream and returns the kills it completes: summaries
// still waiting for their Killed process line, when unconfirmed is set.
func (a *assembler) finish() []Kill {
	a.out = a.out[:0]
	a.flushPending(0)
	return a.out
}

// flushPending ends the wait of every pending summary except pid's: in Scan
// each becomes an unconfirmed kill (unless it is a copy of a kill already
// reported, or its victim was named by a "Kill process" line and so may have
// handed its death to a child); otherwise it is dropped.
func (a *assembler) flushPending(pid int) {
	kept := a.pending[:0]
	for _, s := range a.pending {
		switch {
		case s.pid == pid:
			kept = append(kept, s)
			continue
		case !a.unconfirmed || s.pid == a.named:
			continue
		}
		k := Kill{PID: s.pid, Comm: s.comm, UID: s.uid, Boot: s.at.boot}
		s.mergeInto(&k)
		if s.at.hasWall {
			k.Time = s.at.wall
		}
		if a.duplicate(&k, s.at) {
			continue
		}
		a.remember(&k, s.at, stamp{})
		a.out = append(a.out, k)
	}
	a.pending = kept
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
func (a *assembler) killed(r *record, rest []byte) {
	pid, n := leadingInt(rest)
	// "N (" proves the pid is complete; a line cut inside the number could
	// name another process.
	if pid <= 0 || !bytes.HasPrefix(rest[n:], []byte(" (")) {
		return
	}
	k := Kill{PID: pid, Confirmed: true}
	body := rest[n+2:]
	var tail []byte
	if i := bytes.LastIndex(body, []byte(") total-vm:")); i >= 0 {
		k.Comm, tail = a.text(r, body[:i]), body[i+2:]
	} else if i := bytes.LastIndex(body, []byte("), UID ")); i >= 0 {
		k.Comm, tail = a.text(r, body[:i]), body[i+3:]
	}
	parseKillTail(&k, tail)
	// A bare line has no kernel prefix to vouch for it: only the kernel's
	// whole format counts, sizes included.
	if r.bare && (tail == nil || k.TotalVMBytes == nil || k.AnonRSSBytes == nil || k.FileRSSBytes == nil) {
		return
	}

	at := a.stamp(r)
	k.Boot = at.boot
	if at.hasWall {
		k.Time = at.wall
	}
	// Other pids' summaries end here: this OOM killed k.
	a.flushPending(pid)
	if a.duplicate(&k, at) {
		a.takeSummary(&k, at) // drop the duplicate's own summary line
		return
	}
	sumAt, took := a.takeSummary(&k, at)
	if !took {
		if l := a.legacy; l != nil && l.at.near(at, staleAfter) {
			k.TaskMemcg, k.OOMMemcg = l.task, l.limit
		}
	}
	a.legacy = nil
	if st := a.stats; st != nil && st.at.near(at, staleAfter) && len(st.vals) > 0 &&
		(k.OOMMemcg == "" || k.OOMMemcg == st.path) {
		k.MemcgStats = st.m()
	}
	a.stats = nil
	a.remember(&k, at, sumAt)
	a.out = append(a.out, k)
}

// statsHeader starts a stats block at the text after "Memory cgroup stats
// for ". Since Linux 4.19 (v1) and on v2 the block is "PATH:" and then
// "key value" lines, in separate records since Linux 6.4 and in one record
// of several lines before; older v1 kernels print one line per cgroup,
// "PATH: cache:0KB rss:123KB …". Only the first block (the cgroup whose
// limit was hit; v1 prints its children right after it) is kept; a block
// is attached to a kill within staleAfter of it only.
func (a *assembler) statsHeader(r *record, rest []byte, closing bool) {
	if closing {
		return // a child's block right after the first
	}
	path, pairs, inline := bytes.Cut(rest, []byte(": "))
	if !inline {
		if !bytes.HasSuffix(rest, []byte(":")) {
			return
		}
		path = rest[:len(rest)-1]
	}
	var st memcgStats
	for len(pairs) > 0 {
		f := pairs
		if sp := bytes.IndexByte(pairs, ' '); sp >= 0 {
			f, pairs = pairs[:sp], pairs[sp+1:]
		} else {
			pairs = nil
		}
		key, val, ok := bytes.Cut(f, []byte(":"))
		kb, isKB := bytes.CutSuffix(val, []byte("KB"))
		v, num := parseStatValue(kb)
		if !ok || !isKB || !num || v > (1<<64-1)/1024 || !validStatKey(key) {
			if len(st.vals) == 0 {
				return // neither form: text that looks like one
			}
			continue
		}
		st.add(key, v*1024)
	}
	if inline && len(st.vals) == 0 {
		return
	}
	st.path, st.at, st.open = a.text(r, path), a.stamp(r), true
	a.stats = &st
}

// statLine adds the "key value" lines of the open stats block, and reports
// whether msg was made of such lines only. A record holding several lines
// has them separated by newlines, escaped as \x0a by /dev/kmsg.
func (a *assembler) statLine(msg []byte) bool {
	if bytes.Contains(msg, []byte(`\x0a`)) || bytes.IndexByte(msg, '\n') >= 0 {
		msg = bytes.ReplaceAll(msg, []byte(`\x0a`), []byte("\n"))
		any := false
		for line := range bytes.SplitSeq(bytes.TrimRight(msg, "\n"), []byte("\n")) {
			if !a.statLine(line) {
				return any
			}
			any = true
		}
		return any
	}
	key, val, ok := bytes.Cut(msg, []byte(" "))
	if !ok || !validStatKey(key) {
		return false
	}
	v, ok := parseStatValue(val)
	if !ok {
		return false
	}
	a.stats.add(key, v)
	return true
}

// validStatKey says whether b can be a memory.stat key.
func validStatKey(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// parseStatValue parses a decimal counter without overflow.
func parseStatValue(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
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
	if r.bare && (uid == nil || !strictSummary(b)) {
		return
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
	ctxEnd := pi // where the allocation context ends
	if ti := bytes.LastIndex(b[:pi], []byte(",task=")); ti >= 0 {
		s.comm = a.text(r, b[ti+6:pi])
		ctxEnd = ti
		if mi := bytes.LastIndex(b[:ti], []byte(",task_memcg=")); mi >= 0 {
			s.taskMemcg = a.text(r, b[mi+12:ti])
			ctxEnd = mi
			if oi := bytes.LastIndex(b[:mi], []byte(",oom_memcg=")); oi >= 0 {
				s.oomMemcg = a.text(r, b[oi+11:mi])
				ctxEnd = oi
			}
		}
	}
	if gi := bytes.LastIndex(b[:ctxEnd], []byte(",global_oom")); gi >= 0 && s.oomMemcg == "" {
		ctxEnd = gi
	}
	s.context(r, a, b[:ctxEnd])
	if c, ok := bytes.CutPrefix(b, []byte("constraint=")); ok {
		if i := bytes.IndexByte(c, ','); i >= 0 {
			c = c[:i]
		}
		s.constraint = string(c)
	}
	// The kernel prints one OOM kill at a time (oom_lock): a summary of
	// another pid ends the wait of the ones before it.
	a.flushPending(pid)
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

// context reads the allocation context at the start of an oom-kill: line:
// ",nodemask=N" (the %*pbl node list of the allocation, "(null)" when
// unrestricted) and, with CONFIG_CPUSETS, ",cpuset=S,mems_allowed=M" of the
// allocating task (cpuset_print_current_mems_allowed). Node lists contain
// commas, so each value ends at the next key.
func (s *summary) context(r *record, a *assembler, b []byte) {
	ni := bytes.Index(b, []byte(",nodemask="))
	if ni < 0 {
		return
	}
	rest := b[ni+10:]
	ci := bytes.Index(rest, []byte(",cpuset="))
	if ci < 0 {
		s.nodemask = string(rest)
		return
	}
	s.nodemask = string(rest[:ci])
	cs := rest[ci+8:]
	if mi := bytes.LastIndex(cs, []byte(",mems_allowed=")); mi >= 0 {
		s.cpuset, s.memsAllowed = a.text(r, cs[:mi]), string(cs[mi+14:])
	} else {
		s.cpuset = a.text(r, cs)
	}
}

// mergeInto copies the summary's fields that a Killed process line lacks.
func (s *summary) mergeInto(k *Kill) {
	k.Constraint, k.OOMMemcg, k.TaskMemcg = s.constraint, s.oomMemcg, s.taskMemcg
	k.Nodemask, k.Cpuset, k.MemsAllowed = s.nodemask, s.cpuset, s.memsAllowed
}

// strictSummary checks the fixed parts of an oom-kill: line that has no
// kernel prefix: a known constraint (enum oom_constraint) followed by
// nodemask=, and the task= and pid= keys.
func strictSummary(b []byte) bool {
	c, rest, ok := bytes.Cut(b, []byte{','})
	if !ok || !bytes.HasPrefix(rest, []byte("nodemask=")) {
		return false
	}
	switch string(c) {
	case "constraint=CONSTRAINT_NONE", "constraint=CONSTRAINT_CPUSET",
		"constraint=CONSTRAINT_MEMORY_POLICY", "constraint=CONSTRAINT_MEMCG":
	default:
		return false
	}
	return bytes.Contains(rest, []byte(",task=")) && bytes.Contains(rest, []byte(",pid="))
}

// takeSummary merges and removes the pending oom-kill: line of k's pid and
// returns its stamp.
func (a *assembler) takeSummary(k *Kill, at stamp) (stamp, bool) {
	for i := len(a.pending) - 1; i >= 0; i-- {
		s := a.pending[i]
		if s.pid != k.PID {
			continue
		}
		a.pending = append(a.pending[:i], a.pending[i+1:]...)
		if !s.at.near(at, staleAfter) || (s.comm != "" && k.Comm != "" && s.comm != k.Comm) {
			return stamp{}, false
		}
		s.mergeInto(k)
		if k.UID == nil {
			k.UID = s.uid
		}
		if k.Comm == "" {
			k.Comm = s.comm
		}
		return s.at, true
	}
	return stamp{}, false
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
		if p.at.hasSeq && at.hasSeq && p.at.seq != at.seq && (!p.hasSumSeq || p.sumSeq != at.seq) {
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

// remember records k for dropping duplicates; sum is the stamp of the
// oom-kill: line merged into it, if any.
func (a *assembler) remember(k *Kill, at, sum stamp) {
	a.recent[a.nRecent%maxRecent] = recentKill{pid: k.PID, comm: k.Comm, totalVM: deref(k.TotalVMBytes), anonRSS: deref(k.AnonRSSBytes), at: at,
		sumSeq: sum.seq, hasSumSeq: sum.hasSeq}
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
