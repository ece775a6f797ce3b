// Package cgroup owns respawnd's per-program memory cgroups: it detects the
// cgroup mode at run time, creates a program's cgroup with its limits, gives
// the launcher what it needs to start the child inside it (a directory fd
// for clone3 CLONE_INTO_CGROUP on v2, the cgroup.procs file on v1), reads
// usage and limit, kills what is left and removes the cgroup. The cgroupfs
// work goes through github.com/containerd/cgroups/v3.
//
// It deliberately knows nothing of the configuration, the supervisor or OOM
// evidence: callers pass a program name and Limits, and the oom package
// reads memory.events or memory.oom_control from Group.Dir.
//
// # Modes
//
// New picks the hierarchy once. A unified host (cgroup v2 only) whose root
// offers the memory controller uses v2: memory.max, memory.high and
// memory.swap.max. A legacy or hybrid host with the v1 memory controller
// mounted uses v1: memory.limit_in_bytes and, when swap accounting is on,
// memory.memsw.limit_in_bytes = Max + SwapMax. v1 has nothing like
// memory.high, so High is ignored there and reported by Group.Warnings,
// as are swap limits that cannot be expressed. Anything else is an error
// wrapping ErrNoMemoryController that says why.
//
// # Where program cgroups go
//
// By default under respawnd's own cgroup, read from /proc/self/cgroup for
// the hierarchy in use, in the child "programs": a program api of a
// respawnd running in /system.slice/respawnd.service gets
// /system.slice/respawnd.service/programs/api. That is the part of the tree
// that systemd hands over with Delegate=yes and that a container can write
// to. Config.Parent names another parent, relative to the hierarchy root.
//
// On v2 the "no internal processes" rule applies: a non-root cgroup that
// holds processes cannot enable controllers for its children, and the write
// of +memory to its cgroup.subtree_control fails with EBUSY. When that
// happens to respawnd's own cgroup, the first Create moves every process of
// that cgroup (respawnd, and whatever shares its cgroup) into the leaf
// <own>/supervisor, then enables +memory in <own> and in <own>/programs. It
// never does so when the own cgroup is "/": that is the root of a cgroup
// namespace, which must then be given a Config.Parent outside itself. A
// respawnd that starts inside a cgroup named supervisor (left by an
// earlier run, or placed there by systemd's DelegateSubgroup=supervisor)
// treats its parent as its own cgroup.
//
// # Permissions
//
// Errors caused by missing permission (EACCES, EPERM, and EROFS from a
// read-only cgroup fs) satisfy errors.Is(err, fs.ErrPermission) and still
// wrap the os error, so a caller can log one warning and run the program
// without a limit.
//
// Paths reported by Group.Path are relative to the hierarchy root as
// /proc/self/cgroup shows them; inside a cgroup namespace the kernel's OOM
// reports name the same cgroup by its path from the real root.
package cgroup
