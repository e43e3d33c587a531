package wire

import "bytes"

// Header returns the trimmed value of the first header named name (any
// case) in the head buf[:h.Len] that ParseRequest parsed into h, or nil.
// It scans the head again: it is for the few headers a caller looks up on
// demand (a sticky-session key), not for every request.
func (h *RequestHead) Header(buf []byte, name string) []byte {
	w := buf[:min(h.hdrEnd, len(buf))]
	for i := h.hdrOff; ; {
		n, v, next, ok := lineAt(w, i)
		if !ok {
			return nil
		}
		if eqFoldString(n, name) {
			return v
		}
		i = next
	}
}

// Cookie returns the value of the cookie named name in the head's Cookie
// headers ("a=1; b=2"), or nil. Names compare exactly, as browsers send
// them.
func (h *RequestHead) Cookie(buf []byte, name string) []byte {
	w := buf[:min(h.hdrEnd, len(buf))]
	for i := h.hdrOff; ; {
		n, v, next, ok := lineAt(w, i)
		if !ok {
			return nil
		}
		if eqLower(n, "cookie") {
			if c := cookieIn(v, name); c != nil {
				return c
			}
		}
		i = next
	}
}

// cookieIn finds name's value in one Cookie header value.
func cookieIn(value []byte, name string) []byte {
	for len(value) > 0 {
		pair := value
		if i := bytes.IndexByte(value, ';'); i >= 0 {
			pair, value = value[:i], value[i+1:]
		} else {
			value = nil
		}
		pair = trimOWS(pair)
		if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
			return pair[len(name)+1:]
		}
	}
	return nil
}

// lineAt reads the header line at w[i]: its name and trimmed value, and
// where the next one starts; ok is false at the end of the headers.
func lineAt(w []byte, i int) (name, value []byte, next int, ok bool) {
	if i < 0 || i >= len(w) {
		return nil, nil, 0, false
	}
	var l hdrLine
	if more, code := headerLine(w, i, &l); more || code != eNone {
		return nil, nil, 0, false
	}
	return l.name(w), l.value(w), l.next, true
}

// eqFoldString reports whether b equals s ignoring ASCII case.
func eqFoldString(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lowerTab[b[i]] != lowerTab[s[i]] {
			return false
		}
	}
	return true
}
