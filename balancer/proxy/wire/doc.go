// Package wire is the HTTP/1.1 wire layer of the reverse proxy: it parses
// request and response heads that sit in a byte buffer, rewrites them into
// the heads to forward, and follows chunked bodies to find where they end.
//
// It is written for a hand-made epoll event loop and does no I/O: the loop
// reads into its own buffers, calls ParseRequest or ParseResponse until they
// stop answering ErrIncomplete, writes what AppendRequest or AppendResponse
// produce, and feeds body bytes to a ChunkedScanner when a body is chunked.
//
// Nothing here allocates. Parsed heads keep sub-slices of the caller's
// buffer and fixed-size arrays instead of maps or header lists; the writers
// scan the head bytes again rather than remember headers; errors are
// preallocated values. Every parse, append and scan function runs at zero
// allocations per call, which the package's tests check with
// testing.AllocsPerRun.
//
// Parsing follows RFC 9112 strictly where framing is concerned (request
// smuggling is the risk): conflicting or malformed Content-Length, unknown
// transfer codings, obsolete line folding, whitespace before a header
// colon and control characters in header values are refused. Bare LF line
// ends are accepted, as RFC 9112 2.2 allows.
//
// The *Error values returned are shared and must be treated as read-only.
package wire
