package cgroup

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"reflect"
	"slices"
	"syscall"
	"testing"
)

func ptr(v int64) *int64 { return &v }

func TestParseMountInfo(t *testing.T) {
	const mi = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 30 0:38 /docker/ab\040c /mnt/my\040cg rw - cgroup cgroup rw,cpu,memory
broken line
`
	got, err := parseMountInfo([]byte(mi))
	if err != nil {
		t.Fatal(err)
	}
	want := []mount{
		{root: "/", point: "/sys/fs/cgroup", fstype: "tmpfs", superOpts: []string{"rw", "mode=755"}},
		{root: "/", point: "/sys/fs/cgroup/memory", fstype: "cgroup", superOpts: []string{"rw", "memory"}},
		{root: "/", point: "/sys/fs/cgroup/unified", fstype: "cgroup2", superOpts: []string{"rw"}},
		{root: "/docker/ab c", point: "/mnt/my cg", fstype: "cgroup", superOpts: []string{"rw", "cpu", "memory"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseMountInfo:\n got %+v\nwant %+v", got, want)
	}
}

func TestOwnChildToward(t *testing.T) {
	for _, c := range []struct{ own, parent, want string }{
		{"/svc", "/svc/programs", "/svc/programs"},
		{"/svc", "/svc/a/b", "/svc/a"},
		{"/", "/programs", "/programs"},
		{"/svc", "/svc", ""},
		{"/svc", "/svc2/programs", ""},
		{"/svc", "/other", ""},
	} {
		if got := ownChildToward(c.own, c.parent); got != c.want {
			t.Errorf("ownChildToward(%q, %q) = %q, want %q", c.own, c.parent, got, c.want)
		}
	}
}

func TestNeedLeafMove(t *testing.T) {
	busy := &fs.PathError{Op: "write", Path: "cgroup.subtree_control", Err: syscall.EBUSY}
	for _, c := range []struct {
		own  string
		err  error
		want bool
	}{
		{"/svc", busy, true},
		{"/", busy, false},
		{"/svc", nil, false},
		{"/svc", &fs.PathError{Op: "write", Path: "x", Err: syscall.EACCES}, false},
		{"/svc", &fs.PathError{Op: "write", Path: "x", Err: syscall.ENOENT}, false},
	} {
		if got := needLeafMove(c.own, c.err); got != c.want {
			t.Errorf("needLeafMove(%q, %v) = %v, want %v", c.own, c.err, got, c.want)
		}
	}
}

// fakeOps models the kernel rule prepareV2 works around: enabling a
// controller above a child of a cgroup that holds processes fails with
// EBUSY, unless that cgroup is the root "/".
type fakeOps struct {
	procsOf   map[string][]int
	enableErr error    // returned by every enable when set
	enabled   []string // paths passed to enableMemoryAbove
	dirs      []string
	vanish    map[int]bool // pids that exit before they can be moved
}

func (f *fakeOps) enableMemoryAbove(p string) error {
	f.enabled = append(f.enabled, p)
	if f.enableErr != nil {
		return f.enableErr
	}
	parent := path.Dir(p)
	if parent != "/" && len(f.procsOf[parent]) > 0 {
		return &fs.PathError{Op: "write", Path: parent + "/cgroup.subtree_control", Err: syscall.EBUSY}
	}
	return nil
}

func (f *fakeOps) mkdir(p string) error { f.dirs = append(f.dirs, p); return nil }

func (f *fakeOps) procs(p string) ([]int, error) { return slices.Clone(f.procsOf[p]), nil }

func (f *fakeOps) addProc(p string, pid int) error {
	for from, pids := range f.procsOf {
		if i := slices.Index(pids, pid); i >= 0 {
			f.procsOf[from] = slices.Delete(pids, i, i+1)
		}
	}
	if f.vanish[pid] {
		return &fs.PathError{Op: "write", Path: p + "/cgroup.procs", Err: syscall.ESRCH}
	}
	f.procsOf[p] = append(f.procsOf[p], pid)
	return nil
}

func TestPrepareV2MovesOwnProcessesToLeaf(t *testing.T) {
	ops := &fakeOps{procsOf: map[string][]int{"/svc": {100, 101, 102}}, vanish: map[int]bool{102: true}}
	l := layout{v2: true, own: "/svc", parent: "/svc/programs"}
	moved, err := prepareV2(l, ops)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{100, 101}; !slices.Equal(moved, want) {
		t.Errorf("moved %v, want %v", moved, want)
	}
	if got := ops.procsOf["/svc/supervisor"]; !slices.Equal(got, []int{100, 101}) {
		t.Errorf("leaf holds %v, want [100 101]", got)
	}
	if len(ops.procsOf["/svc"]) != 0 {
		t.Errorf("own cgroup still holds %v", ops.procsOf["/svc"])
	}
	if !slices.Equal(ops.dirs, []string{"/svc/supervisor"}) {
		t.Errorf("created %v, want [/svc/supervisor]", ops.dirs)
	}
	if want := []string{"/svc/programs", "/svc/programs"}; !slices.Equal(ops.enabled, want) {
		t.Errorf("enabled above %v, want %v", ops.enabled, want)
	}
}

func TestPrepareV2NoMoveNeeded(t *testing.T) {
	for _, c := range []struct {
		name string
		l    layout
		ops  *fakeOps
		want []string
	}{
		{"own cgroup empty", layout{own: "/svc", parent: "/svc/programs"},
			&fakeOps{procsOf: map[string][]int{"/svc/supervisor": {100}}}, []string{"/svc/programs"}},
		{"parent elsewhere", layout{own: "/svc", parent: "/respawnd"},
			&fakeOps{procsOf: map[string][]int{"/svc": {100}}}, nil},
		{"deeper parent", layout{own: "/svc", parent: "/svc/a/b"},
			&fakeOps{procsOf: map[string][]int{}}, []string{"/svc/a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			moved, err := prepareV2(c.l, c.ops)
			if err != nil || moved != nil {
				t.Fatalf("prepareV2 = %v, %v; want no move, no error", moved, err)
			}
			if !slices.Equal(c.ops.enabled, c.want) || c.ops.dirs != nil {
				t.Errorf("enabled %v, created %v; want enabled %v, nothing created", c.ops.enabled, c.ops.dirs, c.want)
			}
		})
	}
}

func TestPrepareV2NeverEmptiesNamespaceRoot(t *testing.T) {
	ops := &fakeOps{procsOf: map[string][]int{"/": {1}},
		enableErr: &fs.PathError{Op: "write", Path: "cgroup.subtree_control", Err: syscall.EBUSY}}
	_, err := prepareV2(layout{own: "/", parent: "/programs"}, ops)
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("prepareV2 = %v, want EBUSY", err)
	}
	if ops.dirs != nil || !slices.Equal(ops.procsOf["/"], []int{1}) {
		t.Errorf("moved processes out of the root: dirs %v, procs %v", ops.dirs, ops.procsOf)
	}
}

func TestPrepareV2PermissionError(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EACCES, syscall.EPERM, syscall.EROFS} {
		ops := &fakeOps{procsOf: map[string][]int{"/svc": {1}},
			enableErr: &fs.PathError{Op: "write", Path: "cgroup.subtree_control", Err: errno}}
		_, err := prepareV2(layout{own: "/svc", parent: "/svc/programs"}, ops)
		if !errors.Is(err, fs.ErrPermission) || !errors.Is(err, errno) {
			t.Errorf("%v: prepareV2 = %v, want fs.ErrPermission wrapping the errno", errno, err)
		}
		if ops.dirs != nil {
			t.Errorf("%v: created %v", errno, ops.dirs)
		}
	}
}

func TestAsPermission(t *testing.T) {
	rofs := &os.PathError{Op: "mkdir", Path: "/x", Err: syscall.EROFS}
	err := asPermission(rofs)
	var pe *os.PathError
	if !errors.Is(err, fs.ErrPermission) || !errors.Is(err, syscall.EROFS) || !errors.As(err, &pe) {
		t.Errorf("asPermission(EROFS) = %#v: want fs.ErrPermission and the PathError", err)
	}
	if err.Error() != rofs.Error() {
		t.Errorf("message %q, want %q", err.Error(), rofs.Error())
	}
	noent := &os.PathError{Op: "mkdir", Path: "/x", Err: syscall.ENOENT}
	if err := asPermission(noent); errors.Is(err, fs.ErrPermission) || err != error(noent) {
		t.Errorf("asPermission(ENOENT) = %v, want it unchanged", err)
	}
	if asPermission(nil) != nil {
		t.Error("asPermission(nil) != nil")
	}
}

func TestPlanV2(t *testing.T) {
	p := planV2(Limits{Max: ptr(64 << 20), High: ptr(48 << 20), SwapMax: ptr(0)}, true)
	if *p.max != 64<<20 || *p.high != 48<<20 || *p.swap != 0 || p.unset != nil || p.warnings != nil {
		t.Errorf("all set: %+v", p)
	}
	p = planV2(Limits{}, true)
	if p.max != nil || p.high != nil || p.swap != nil ||
		!slices.Equal(p.unset, []string{"memory.max", "memory.high", "memory.swap.max"}) {
		t.Errorf("none set: %+v", p)
	}
	p = planV2(Limits{Max: ptr(1), SwapMax: ptr(2)}, false)
	if p.swap != nil || slices.Contains(p.unset, "memory.swap.max") || len(p.warnings) != 1 {
		t.Errorf("no swap accounting: %+v", p)
	}
	if p = planV2(Limits{}, false); p.warnings != nil {
		t.Errorf("no swap accounting, no swap limit: warnings %v", p.warnings)
	}
}

func TestPlanV1(t *testing.T) {
	for _, c := range []struct {
		name      string
		l         Limits
		memsw     bool
		limit     int64
		wantMemsw *int64
		warnings  int
	}{
		{"max and swap", Limits{Max: ptr(64 << 20), SwapMax: ptr(16 << 20)}, true, 64 << 20, ptr(80 << 20), 0},
		{"max only", Limits{Max: ptr(64 << 20)}, true, 64 << 20, ptr(-1), 0},
		{"no swap accounting", Limits{Max: ptr(64 << 20), SwapMax: ptr(0)}, false, 64 << 20, nil, 1},
		{"swap without max", Limits{SwapMax: ptr(0)}, true, -1, ptr(-1), 1},
		{"high", Limits{Max: ptr(64 << 20), High: ptr(32 << 20), SwapMax: ptr(0)}, true, 64 << 20, ptr(64 << 20), 1},
		{"unset", Limits{}, true, -1, ptr(-1), 0},
	} {
		p := planV1(c.l, c.memsw)
		if p.limit != c.limit || !reflect.DeepEqual(p.memsw, c.wantMemsw) || len(p.warnings) != c.warnings {
			t.Errorf("%s: planV1 = limit %d memsw %v warnings %q; want %d %v %d warnings",
				c.name, p.limit, p.memsw, p.warnings, c.limit, c.wantMemsw, c.warnings)
		}
	}
}

func TestMemswFirst(t *testing.T) {
	const unlimited = 9223372036854771712 // what v1 shows with 4 KiB pages
	for _, c := range []struct {
		newLimit int64
		cur      uint64
		want     bool
	}{
		{128 << 20, 64 << 20, true},  // raising above memsw
		{32 << 20, 64 << 20, false},  // lowering
		{64 << 20, 64 << 20, false},  // equal is allowed
		{64 << 20, unlimited, false}, // first limit on a fresh group
		{-1, 64 << 20, true},         // lifting the limit
		{-1, unlimited, false},
	} {
		if got := memswFirst(c.newLimit, c.cur, 4096); got != c.want {
			t.Errorf("memswFirst(%d, %d) = %v, want %v", c.newLimit, c.cur, got, c.want)
		}
	}
}

func TestParseLimit(t *testing.T) {
	for _, c := range []struct {
		in     string
		want   uint64
		ok     bool
		hasErr bool
	}{
		{"max\n", 0, false, false},
		{"67108864\n", 67108864, true, false},
		{"9223372036854771712\n", 0, false, false},
		{"junk", 0, false, true},
	} {
		v, ok, err := parseLimit([]byte(c.in), 4096)
		if v != c.want || ok != c.ok || (err != nil) != c.hasErr {
			t.Errorf("parseLimit(%q) = %d, %v, %v", c.in, v, ok, err)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "a\nb"} {
		if err := validName(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("validName(%q) = %v", n, err)
		}
	}
	if err := validName("api-1.x"); err != nil {
		t.Errorf("validName(api-1.x) = %v", err)
	}
	if err := (Limits{High: ptr(-1)}).validate(); !errors.Is(err, ErrInvalidLimit) {
		t.Errorf("negative high: %v", err)
	}
}
