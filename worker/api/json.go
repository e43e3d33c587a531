package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/procbal/procbal/worker/store"
)

// writeJSON answers status with v as JSON.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, "encoding the answer failed")
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// decodeObject parses the request body as exactly one JSON object, or
// answers 400.
func decodeObject(ctx *fasthttp.RequestCtx) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(ctx.PostBody()))
	err := dec.Decode(&m)
	if err == nil && m == nil {
		err = errors.New("null")
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the object")
		}
	}
	if err != nil {
		writeError(ctx, fasthttp.StatusBadRequest, "the request body must be one JSON object")
		return nil, false
	}
	return m, true
}

// textField reads m[key] as a name-like string: present, a string, valid
// UTF-8, not empty, at most store.MaxNameLen characters, no NUL (which
// PostgreSQL's text cannot hold). On failure it returns "" and why.
func textField(m map[string]json.RawMessage, key string) (string, string) {
	raw, ok := m[key]
	if !ok || string(raw) == "null" {
		return "", key + " is required"
	}
	if raw[0] != '"' {
		return "", key + " must be a string"
	}
	// encoding/json replaces invalid UTF-8 and lone surrogate escapes
	// with U+FFFD without a word, so look at the raw bytes.
	if !utf8.Valid(raw) {
		return "", key + " must be valid UTF-8"
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", key + " must be a string"
	}
	if strings.ContainsRune(s, utf8.RuneError) && !bytes.Contains(raw, []byte("\uFFFD")) &&
		!strings.Contains(strings.ToLower(string(raw)), `\ufffd`) {
		return "", key + " must be valid UTF-8 (no lone surrogate)"
	}
	switch {
	case s == "":
		return "", key + " must not be empty"
	case utf8.RuneCountInString(s) > store.MaxNameLen:
		return "", key + " must be at most " + strconv.Itoa(store.MaxNameLen) + " characters"
	case strings.IndexByte(s, 0) >= 0:
		return "", key + " must not contain NUL"
	}
	return s, ""
}
