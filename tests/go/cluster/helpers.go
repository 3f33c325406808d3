package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/status"
)

// WantErr fails the test unless err is want (compared with errors.Is, as clients do), and says
// what came instead, with its gRPC code.
func WantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if errors.Is(err, want) {
		return
	}
	t.Errorf("%s: want error %q, got %s", what, want, Describe(err))
}

// NoErr fails the test now if err is not nil.
func NoErr(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %s", what, Describe(err))
	}
}

// Describe formats an error with its gRPC code, if it has one.
func Describe(err error) string {
	if err == nil {
		return "no error"
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%q (gRPC %s: %q; %T)", err.Error(), s.Code(), s.Message(), err)
	}
	return fmt.Sprintf("%q (%T)", err.Error(), err)
}

// Eventually retries f every 50 ms until it returns nil or d has passed, then fails the test
// with f's last error.
func Eventually(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
