// Package securefs opens files and directories on behalf of a
// less-privileged user without letting that user redirect the open through
// symbolic links, renames, hard links or special files.
//
// It owns one thing: resolving an absolute path the way systemd's chase()
// and OpenSSH's safe_path do, and checking who owns every step. It knows
// nothing of respawnd's configuration, of credentials (a caller that wants
// the kernel to check a program user's permissions switches its thread's
// filesystem ids around the call) or of what the opened file is used for.
//
// # Resolution
//
// A path is resolved from "/" one component at a time with
// openat(dirfd, name, O_PATH|O_NOFOLLOW), so the kernel never walks more
// than one name on its own, and every object is checked with fstat on the
// descriptor that was opened. Everything after that acts on descriptors,
// never on the path again, so an object renamed or replaced after it was
// checked is not the one acted on. The rules, with the trusted uids given by
// the caller in a Policy:
//
//   - Every directory traversed, the directory opened by OpenDir and
//     MkdirOpen, and the object opened by OpenFile must be owned by a
//     trusted uid (ErrUntrustedOwner).
//   - A directory writable by others (mode o+w) without the sticky bit is
//     refused (ErrWritableByOthers): anyone could rename its entries away
//     and put their own in their place. A sticky directory such as /tmp is
//     accepted, because there others can only remove or rename their own
//     entries, and whatever they create is theirs and fails the owner check.
//   - A group-writable directory is accepted (Ubuntu's /var/log is
//     root:syslog 0775). A member of the group can remove or rename entries
//     there, but everything the member creates, links included, is owned by
//     the member and so refused by the owner checks; what is left to the
//     member is moving objects a trusted uid already owns, and a regular
//     file planted by a hard link is refused (below).
//   - A symbolic link is followed only if the link itself is owned by a
//     trusted uid; its target is read with readlinkat on the O_PATH
//     descriptor and resolved by the same rules, from "/" for an absolute
//     target and from the link's directory for a relative one. ".." opens
//     the physical parent of the current directory. At most 40 links are
//     followed per resolution (ErrTooManyLinks), as the kernel does. This
//     keeps root's links such as Debian's /var/run -> /run working.
//   - The final open is openat(parent, name, flags|O_NOFOLLOW|O_NONBLOCK|
//     O_CLOEXEC|O_NOCTTY). ELOOP there means the last component is a link,
//     which is followed by the rule above. O_NONBLOCK makes sure a FIFO or a
//     device cannot hang the caller (a FIFO opened for writing with no
//     reader fails with ENXIO); it is cleared once the object is accepted.
//     O_TRUNC is applied with ftruncate only after the checks, so a refused
//     file is never truncated.
//   - The opened object must be of an allowed type: a regular file, or a
//     character device (such as /dev/null) when Policy.CharDevices is set
//     (ErrNotRegular). A regular file must have exactly one link
//     (ErrHardLink): a second name is how a hard link planted to another
//     file looks. Its owner must be trusted.
//
// OpenAt opens one name inside a directory the caller already holds (a
// state directory opened with MkdirOpen) and never follows a link there
// (ErrSymlink).
//
// The kernel's openat2(RESOLVE_NO_SYMLINKS) cannot express "follow a link
// only if root owns it", so the walk is done in user space.
// github.com/cyphar/filepath-securejoin resolves race-free within a root
// directory but checks no owners, so it does not provide these rules.
//
// # Errors
//
// A refusal is an *Error naming the path asked for, the component at fault
// and the reason, for example
//
//	securefs: /srv/x/logs: owned by uid 1000, not a trusted owner (resolving /srv/x/logs/app.log)
//
// It wraps one of the sentinel errors of this package, or the system's
// error unchanged, so that errors.Is(err, fs.ErrNotExist) and
// errors.Is(err, fs.ErrPermission) work.
//
// Every function is safe for concurrent use. The package needs Linux;
// elsewhere every function returns ErrUnsupported.
package securefs
