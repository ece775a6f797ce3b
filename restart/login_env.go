package restart

import (
	"bufio"
	"io"
	"slices"
	"strings"
)

// withLoginEnv returns env plus each KEY=value of login whose key env does
// not set: a variable of the program's configuration wins. env's backing
// array is never written to.
func withLoginEnv(env, login []string) []string {
	out := slices.Clip(env)
	for _, kv := range login {
		i := strings.IndexByte(kv, '=')
		if i < 0 {
			continue
		}
		prefix := kv[:i+1]
		if slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, prefix) }) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// loginEnv returns HOME, USER, LOGNAME and, when known, SHELL for a user.
// An empty home is "/", as login(1) makes it.
func loginEnv(name, home, shell string) []string {
	if home == "" {
		home = "/"
	}
	env := []string{"HOME=" + home, "USER=" + name, "LOGNAME=" + name}
	if shell != "" {
		env = append(env, "SHELL="+shell)
	}
	return env
}

// maxPasswd caps how much of the passwd file is read.
const maxPasswd = 16 << 20

// passwdShell returns the login shell of the passwd(5) entry with both name
// and uid, read from r; "/bin/sh" when the entry's shell field is empty (as
// login and su default it), "" and false when there is no such entry.
func passwdShell(r io.Reader, name, uid string) (string, bool) {
	sc := bufio.NewScanner(io.LimitReader(r, maxPasswd))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		// name:password:UID:GID:GECOS:directory:shell
		f := strings.Split(sc.Text(), ":")
		if len(f) != 7 || f[0] != name || f[2] != uid {
			continue
		}
		if f[6] == "" {
			return "/bin/sh", true
		}
		return f[6], true
	}
	return "", false
}
