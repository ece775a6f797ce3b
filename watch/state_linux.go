package watch

import "golang.org/x/sys/unix"

// renameNoReplace renames oldName to newName in the directory dirfd, or
// fails with EEXIST when newName exists.
func renameNoReplace(dirfd int, oldName, newName string) error {
	return unix.Renameat2(dirfd, oldName, dirfd, newName, unix.RENAME_NOREPLACE)
}
