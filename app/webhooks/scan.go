package webhooks

import (
	"bytes"
	"encoding/binary"
)

// maxNestingDepth is encoding/json's limit on nested arrays and objects:
// a body nested deeper is not valid JSON to it, so not to scan either.
const maxNestingDepth = 10000

// route is what scan read of a body: message.type and the assistant id
// (message.call.assistantId, else message.assistant.id), each "" when
// absent or not a string, as parsePayload reads them. exact is false when
// the body holds something that only the full parse decides: a key that
// would match one of those only in another letter case or through an
// escape, a repeated key on the way to them, or a value with an escape or a
// non-ASCII byte.
type route struct {
	typ, assistantID string
	exact            bool
}

// scan checks that body is valid JSON exactly as json.Valid does, and reads
// its route on the way, in one pass that allocates only the two strings it
// returns: most deliveries need nothing else, and this is several times
// cheaper than decoding them. It fails (errMalformed) when json.Valid would
// say false.
func scan(body []byte) (route, error) {
	s := scanner{b: body, exact: true}
	if err := s.value(levelTop); err != nil {
		return route{}, err
	}
	s.ws()
	if s.i != len(s.b) {
		return route{}, errMalformed
	}
	r := route{exact: s.exact}
	if s.exact {
		r.typ = string(s.typ)
		r.assistantID = string(s.callAssistant)
		if r.assistantID == "" {
			r.assistantID = string(s.assistant)
		}
	}
	return r, nil
}

// level is where in the body a value sits, for the keys scan reads.
type level int

const (
	levelNone level = iota
	levelTop
	levelMessage
	levelCall
	levelAssistant
)

// keys are the keys read at each level, in the letter case the full parse
// prefers.
var keys = [...][]string{
	levelTop:       {"message"},
	levelMessage:   {"type", "call", "assistant"},
	levelCall:      {"assistantId"},
	levelAssistant: {"id"},
}

type scanner struct {
	b     []byte
	i     int
	depth int
	exact bool
	// What was read (slices of b), and which keys were seen, by level and
	// position in keys.
	typ, callAssistant, assistant []byte
	seen                          [5][3]bool
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value reads one value at lvl.
func (s *scanner) value(lvl level) error {
	s.ws()
	if s.i >= len(s.b) {
		return errMalformed
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(lvl)
	case c == '[':
		return s.array()
	case c == '"':
		_, _, err := s.str()
		return err
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return errMalformed
}

func (s *scanner) push() error {
	s.depth++
	if s.depth > maxNestingDepth {
		return errMalformed
	}
	s.i++
	return nil
}

func (s *scanner) object(lvl level) error {
	if err := s.push(); err != nil {
		return err
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		s.depth--
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errMalformed
		}
		key, plain, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errMalformed
		}
		s.i++
		if err := s.member(lvl, s.match(lvl, key, plain)); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errMalformed
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return nil
		default:
			return errMalformed
		}
	}
}

// match returns the position in keys[lvl] of key, or -1. A key that could
// match one only the way encoding/json matches (any letter case, escapes,
// non-ASCII folding), or that repeats one, makes the scan inexact.
func (s *scanner) match(lvl level, key []byte, plain bool) int {
	want := keys[lvl]
	if len(want) == 0 {
		return -1
	}
	if !plain {
		s.exact = false
		return -1
	}
	for i, k := range want {
		if string(key) == k {
			if s.seen[lvl][i] {
				s.exact = false
			}
			s.seen[lvl][i] = true
			return i
		}
		if bytes.EqualFold(key, []byte(k)) {
			s.exact = false
		}
	}
	return -1
}

// member reads the value of key number k (-1: not one scan reads) of an
// object at lvl.
func (s *scanner) member(lvl level, k int) error {
	if k < 0 {
		return s.value(levelNone)
	}
	s.ws()
	if s.i >= len(s.b) {
		return errMalformed
	}
	switch lvl {
	case levelTop:
		return s.value(levelMessage)
	case levelMessage:
		switch k {
		case 0:
			return s.text(&s.typ)
		case 1:
			return s.value(levelCall)
		default:
			return s.value(levelAssistant)
		}
	case levelCall:
		return s.text(&s.callAssistant)
	case levelAssistant:
		return s.text(&s.assistant)
	}
	return s.value(levelNone)
}

// text reads a value into *dst when it is a string (anything else leaves it
// as it is, as the full parse does).
func (s *scanner) text(dst *[]byte) error {
	if s.b[s.i] != '"' {
		return s.value(levelNone)
	}
	v, plain, err := s.str()
	if err != nil {
		return err
	}
	if !plain {
		s.exact = false
	}
	*dst = v
	return nil
}

func (s *scanner) array() error {
	if err := s.push(); err != nil {
		return err
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		s.depth--
		return nil
	}
	for {
		if err := s.value(levelNone); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errMalformed
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return nil
		default:
			return errMalformed
		}
	}
}

// str reads a string starting at its opening quote and returns its content
// as written, and whether that is plain (printable ASCII without escapes,
// so the content is the value).
func (s *scanner) str() ([]byte, bool, error) {
	s.i++
	start, plain := s.i, true
	for s.i < len(s.b) {
		s.i = skipPlain(s.b, s.i)
		for s.i < len(s.b) && plainByte[s.b[s.i]] {
			s.i++
		}
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], plain, nil
		case c == '\\':
			plain = false
			if s.i+1 >= len(s.b) {
				return nil, false, errMalformed
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, false, errMalformed
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !isHex(h) {
						return nil, false, errMalformed
					}
				}
				s.i += 6
			default:
				return nil, false, errMalformed
			}
		case c < 0x20:
			return nil, false, errMalformed
		default:
			if c >= 0x80 {
				plain = false
			}
			s.i++
		}
	}
	return nil, false, errMalformed
}

// skipPlain returns the index of the first 8-byte word at or after i in b
// that holds a byte other than a plain one (see plainByte), or the start
// of b's last partial word. It reads a word at a time: a string's bytes
// are mostly plain, and the bytes it stops at are left to the caller's
// byte-wise loop.
func skipPlain(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// With no byte of 0x80 or more, a byte's top bit is set after
		// the subtraction only for a byte under 0x20, the quote or the
		// backslash (or above one of those, by its borrow).
		if x&highs != 0 || ((x-0x20*ones)|((x^'"'*ones)-ones)|((x^'\\'*ones)-ones))&highs != 0 {
			return i
		}
	}
	return i
}

// plainByte marks the bytes a string holds as they are: printable ASCII but
// the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return errMalformed
	}
	s.i += len(lit)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() error {
	if s.b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(s.b) && s.b[s.i] == '0':
		s.i++
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return errMalformed
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return errMalformed
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return errMalformed
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}
