package securefs

// Policy says whom a resolution trusts and which objects it accepts at its
// end. The zero value trusts root only and accepts regular files only.
type Policy struct {
	// Trusted lists the uids that may own the directories traversed, the
	// symbolic links followed and the object opened. Empty means root only;
	// root is not added otherwise.
	Trusted []int
	// CharDevices makes OpenFile accept a character device (such as
	// /dev/null) besides a regular file.
	CharDevices bool
}

func (p *Policy) trusts(uid uint32) bool {
	if len(p.Trusted) == 0 {
		return uid == 0
	}
	for _, t := range p.Trusted {
		if t >= 0 && uint32(t) == uid {
			return true
		}
	}
	return false
}
