// Package freeport finds a loopback TCP port that is free right now, for
// the servers the tests and the benchmarks start of their own. Another
// process may take it before the server binds it; callers on a shared
// machine accept that race.
package freeport

import (
	"net"
	"strconv"
)

// Port returns a port on 127.0.0.1 that nothing listens on.
func Port() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns "127.0.0.1:<port>" for a Port.
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
