package supervisor

import "sort"

// saveState writes the state file from every program's current instance
// and the kept orphans. ids caches what the state file records about each
// pid (start time, boot, executable, uid), so each instance's /proc is read
// once.
func (s *Supervisor) saveState(ids map[int]Instance) {
	s.mu.Lock()
	if !s.applied {
		s.mu.Unlock()
		return
	}
	ps := make([]*program, 0, len(s.programs))
	for _, p := range s.programs {
		ps = append(ps, p)
	}
	orphans := make([]Instance, 0, len(s.orphans))
	for _, o := range s.orphans {
		orphans = append(orphans, o)
	}
	s.mu.Unlock()
	var out []Instance
	seen := map[int]bool{}
	for _, p := range ps {
		inst, ok := p.instance()
		if !ok {
			continue
		}
		id, ok := ids[inst.PID]
		if !ok {
			var err error
			if id, err = s.cfg.Processes.Identify(inst.PID); err != nil {
				continue // gone already; its death is on its way
			}
			ids[inst.PID] = id
		}
		inst.StartTime, inst.BootID, inst.Exe, inst.UID = id.StartTime, id.BootID, id.Exe, id.UID
		seen[inst.PID] = true
		out = append(out, inst)
	}
	for _, o := range orphans {
		if id, err := s.cfg.Processes.Identify(o.PID); err != nil || id.StartTime != o.StartTime {
			s.dropOrphan(o)
			continue
		}
		out = append(out, o)
	}
	for pid := range ids {
		if !seen[pid] {
			delete(ids, pid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Program < out[j].Program })
	if err := s.cfg.SaveState(out); err != nil {
		s.log.Warn("writing state file", "err", err)
	}
}

// stateChanged asks the state writer for a new state file; requests that
// come while one is pending are merged.
func (s *Supervisor) stateChanged() {
	select {
	case s.stateC <- struct{}{}:
	default:
	}
}
