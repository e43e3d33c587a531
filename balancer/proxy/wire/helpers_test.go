package wire

import (
	"errors"
	"strings"
	"testing"
)

// crlf turns "\n" line ends into "\r\n", to keep test heads readable.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// checkErr compares err with want: nil, a sentinel error, or an *Error
// whose Status and Msg must match.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	var we *Error
	if errors.As(want, &we) {
		var ge *Error
		if !errors.As(err, &ge) || ge.Status != we.Status || ge.Msg != we.Msg {
			t.Fatalf("error = %v, want %v", err, want)
		}
		return
	}
	if err != want {
		t.Fatalf("error = %v, want %v", err, want)
	}
}

func str(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return string(b)
}

func e(status int, msg string) error { return &Error{status, msg} }

// closeIf is the Connection value AppendResponse gets for closeClient.
func closeIf(closeClient bool) string {
	if closeClient {
		return "close"
	}
	return ""
}
