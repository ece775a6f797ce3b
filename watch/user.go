package watch

import (
	"os/user"
	"strconv"
)

// lookupUID turns a user name or a numeric uid into a uid. A name is looked
// up in the host's user database, not in ProcRoot.
func lookupUID(name string) (int, error) {
	if uid, err := strconv.Atoi(name); err == nil && uid >= 0 {
		return uid, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}

// LookupUID turns a user name or a numeric uid into a uid, as Matcher.User
// does.
func LookupUID(name string) (int, error) { return lookupUID(name) }
