//go:build !linux

package notify

import "context"

// Server serves programs' notify sockets; it needs Linux.
type Server struct{}

// New returns ErrUnsupported outside Linux.
func New(cfg Config) (*Server, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

// Open returns ErrUnsupported outside Linux.
func (s *Server) Open(program string, member func(pid int) bool, deliver func(Message)) (addr string, close func(), err error) {
	return "", nil, ErrUnsupported
}

// Run returns ErrUnsupported outside Linux.
func (s *Server) Run(ctx context.Context) error {
	return ErrUnsupported
}
