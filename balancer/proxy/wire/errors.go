package wire

import (
	"errors"
	"strconv"
)

// ErrIncomplete means the head is not complete yet in the buffer: read more
// and parse again.
var ErrIncomplete = errors.New("incomplete head")

// ErrHeadTooLarge means no complete head appeared within Limits.MaxHead
// bytes. A server answers 431 to a request; a response that large is treated
// as a bad upstream.
var ErrHeadTooLarge = errors.New("head too large")

// Error is a malformed message. Status is what a server answers: for
// requests 400, 431 (too many headers), 501 (unknown transfer coding) or 505
// (HTTP version); for responses always 502; for chunked bodies 400. Msg is a
// short reason for a JSON error body.
//
// The values returned by this package are shared: do not modify them.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string {
	return strconv.Itoa(e.Status) + " " + e.Msg
}

// errCode names a head error; reqErrs and respErrs map it to the *Error a
// request or a response parse returns.
type errCode uint8

const (
	eNone errCode = iota
	eStartLine
	eVersion
	eHeaderLine
	eObsFold
	eCtl
	eTooMany
	eBadCL
	eConflictCL
	eTECoding
	eBadTE
	eTE10
	eBothCLTE
	eMultiHost
	eNoHost
	eBadHost
	eTarget
	eConnect
	eUpgradeBody
	eUpgrade10
	nErrCodes
)

var reqErrs = [nErrCodes]*Error{
	eStartLine:   {400, "malformed request line"},
	eVersion:     {505, "http version not supported"},
	eHeaderLine:  {400, "malformed header line"},
	eObsFold:     {400, "obsolete line folding"},
	eCtl:         {400, "control character in header"},
	eTooMany:     {431, "too many headers"},
	eBadCL:       {400, "bad Content-Length"},
	eConflictCL:  {400, "conflicting Content-Length"},
	eTECoding:    {501, "unsupported transfer coding"},
	eBadTE:       {400, "malformed Transfer-Encoding"},
	eTE10:        {400, "Transfer-Encoding in HTTP/1.0 request"},
	eBothCLTE:    {400, "both Content-Length and Transfer-Encoding"},
	eMultiHost:   {400, "multiple Host headers"},
	eNoHost:      {400, "missing Host header"},
	eBadHost:     {400, "malformed Host header"},
	eTarget:      {400, "malformed request target"},
	eConnect:     {405, "CONNECT is not supported: this is not a forward proxy"},
	eUpgradeBody: {400, "Upgrade request with a body"},
	eUpgrade10:   {400, "Upgrade in an HTTP/1.0 request"},
}

var respErrs = [nErrCodes]*Error{
	eStartLine:  {502, "malformed status line"},
	eVersion:    {502, "http version not supported"},
	eHeaderLine: {502, "malformed header line"},
	eObsFold:    {502, "obsolete line folding"},
	eCtl:        {502, "control character in header"},
	eTooMany:    {502, "too many headers"},
	eBadCL:      {502, "bad Content-Length"},
	eConflictCL: {502, "conflicting Content-Length"},
	eTECoding:   {502, "unsupported transfer coding"},
	eBadTE:      {502, "malformed Transfer-Encoding"},
}

// Chunked body errors.
var (
	errChunkSize     = &Error{400, "bad chunk size"}
	errChunkTooLarge = &Error{400, "chunk size too large"}
	errChunkExt      = &Error{400, "bad chunk extension"}
	errChunkLine     = &Error{400, "chunk line too long"}
	errChunkCRLF     = &Error{400, "missing CRLF after chunk data"}
	errTrailer       = &Error{400, "malformed trailer"}
	errTrailerLarge  = &Error{400, "trailer section too large"}
)
