package restart

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// lookupCredential resolves a Command's User and Group. It returns nil when
// both are empty (the program keeps respawnd's credentials). login is the
// user's HOME, USER, LOGNAME and SHELL as KEY=value, nil without User.
func lookupCredential(userName, groupName string) (cred *syscall.Credential, login []string, serr *StartError) {
	if userName == "" && groupName == "" {
		return nil, nil, nil
	}
	cred = &syscall.Credential{}
	if userName == "" {
		// Only the gid changes; respawnd's supplementary groups stay.
		cred.Uid = uint32(os.Getuid())
		cred.NoSetGroups = true
	} else {
		u, err := lookupUser(userName)
		if err != nil {
			return nil, nil, &StartError{Op: OpLookupUser, Err: err}
		}
		if u == nil {
			// A numeric uid without an entry in the user database.
			id, _ := parseID(userName)
			cred.Uid, cred.Gid = id, id
			login = loginEnv(userName, "/", "")
		} else {
			login = loginEnv(u.Username, u.HomeDir, userShell(u))
			if cred.Uid, err = parseID(u.Uid); err != nil {
				return nil, nil, &StartError{Op: OpLookupUser, Err: fmt.Errorf("uid of user %s: %w", userName, err)}
			}
			if cred.Gid, err = parseID(u.Gid); err != nil {
				return nil, nil, &StartError{Op: OpLookupUser, Err: fmt.Errorf("primary gid of user %s: %w", userName, err)}
			}
			gids, err := u.GroupIds()
			if err != nil {
				return nil, nil, &StartError{Op: OpLookupUser, Err: fmt.Errorf("groups of user %s: %w", userName, err)}
			}
			cred.Groups = make([]uint32, 0, len(gids))
			for _, g := range gids {
				id, err := parseID(g)
				if err != nil {
					return nil, nil, &StartError{Op: OpLookupUser, Err: fmt.Errorf("groups of user %s: %w", userName, err)}
				}
				cred.Groups = append(cred.Groups, id)
			}
		}
	}
	if groupName != "" {
		gid, err := lookupGroup(groupName)
		if err != nil {
			return nil, nil, &StartError{Op: OpLookupGroup, Err: err}
		}
		cred.Gid = gid
	}
	return cred, login, nil
}

// userShell returns the login shell of u from /etc/passwd, which os/user
// does not report; "" for a user the file lacks (one of another user
// database), who then gets no SHELL rather than a guess.
func userShell(u *user.User) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	shell, _ := passwdShell(f, u.Username, u.Uid)
	return shell
}

// lookupUser finds a user by name, or by uid when name is numeric. It
// returns nil and no error for a numeric uid the user database lacks.
func lookupUser(name string) (*user.User, error) {
	if _, err := parseID(name); err == nil {
		u, err := user.LookupId(name)
		if err != nil {
			var unknown user.UnknownUserIdError
			if errors.As(err, &unknown) {
				return nil, nil
			}
			return nil, fmt.Errorf("looking up uid %s: %w", name, err)
		}
		return u, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("looking up user %s: %w", name, err)
	}
	return u, nil
}

// lookupGroup finds a gid by group name; a numeric name is taken as is.
func lookupGroup(name string) (uint32, error) {
	if id, err := parseID(name); err == nil {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("looking up group %s: %w", name, err)
	}
	id, err := parseID(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("gid of group %s: %w", name, err)
	}
	return id, nil
}

func parseID(s string) (uint32, error) {
	id, err := strconv.ParseUint(s, 10, 32)
	return uint32(id), err
}
