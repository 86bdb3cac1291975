package steps

import (
	"errors"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonBody decodes an answer's JSON into the values encoding/json gives an any
// (map[string]any, []any, string, float64, bool, nil), in two passes over the
// same grammar. The first validates and measures: what the decoded value will
// take, so the run can wait for room before building it. The second builds it.
// Decoded JSON is mostly Go's map overhead (336 bytes for an object of up to 8
// keys, whatever its size in the body), which no decoder into maps avoids; what
// this one saves over encoding/json is the rest: each key, each short string
// and each number is allocated once per body however often it repeats, small
// integers not at all, and lists are built at their exact size. It is about
// twice as fast, with half the allocations (BenchmarkDecodeLargeBody).
type jsonBody struct {
	data  []byte
	i     int
	depth int
	build bool
	cost  int64
	keys  map[string]string // every key, once
	strs  map[string]any    // short strings, boxed once
	nums  map[uint64]any    // numbers by their bits, boxed once
	list  []any             // elements of the lists being built
	pairs []jsonPair        // members of the objects being built
	buf   []byte            // a string with escapes, unquoted
	err   error
}

type jsonPair struct {
	key string
	val any
}

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

// internMax is the longest string shared between its occurrences; internCap
// bounds each table, so a body of distinct values does not grow it without end.
const (
	internMax = 32
	internCap = 1 << 14
)

var errNotJSON = errors.New("not JSON")

// smallInts are the numbers 0..255, boxed once for every body.
var smallInts = func() (b [256]any) {
	for i := range b {
		b[i] = float64(i)
	}
	return b
}()

// measureJSON validates data as one JSON value and estimates the bytes its
// decoded form takes; ok is false when it is not JSON.
func measureJSON(data []byte) (*jsonBody, bool) {
	d := &jsonBody{data: data, keys: map[string]string{}, strs: map[string]any{}, nums: map[uint64]any{}}
	d.run()
	return d, d.err == nil
}

// decode builds the value measured.
func (d *jsonBody) decode() any {
	d.build, d.i, d.depth = true, 0, 0
	v := d.run()
	d.keys, d.strs, d.nums, d.list, d.pairs = nil, nil, nil, nil, nil
	return v
}

func (d *jsonBody) run() any {
	d.space()
	v := d.value()
	d.space()
	if d.err == nil && d.i != len(d.data) {
		d.err = errNotJSON
	}
	return v
}

func (d *jsonBody) fail() any {
	if d.err == nil {
		d.err = errNotJSON
	}
	return nil
}

func (d *jsonBody) space() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// next is the byte at the cursor, 0 at the end.
func (d *jsonBody) next() byte {
	if d.i < len(d.data) {
		return d.data[d.i]
	}
	return 0
}

func (d *jsonBody) value() any {
	switch c := d.next(); {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		s, ok := d.str()
		if !ok {
			return d.fail()
		}
		return d.text(s)
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return d.fail()
}

func (d *jsonBody) literal(word string, v any) any {
	if len(d.data)-d.i < len(word) || string(d.data[d.i:d.i+len(word)]) != word {
		return d.fail()
	}
	d.i += len(word)
	return v
}

func (d *jsonBody) object() any {
	if d.depth++; d.depth > maxJSONDepth {
		return d.fail()
	}
	d.i++
	base, n := len(d.pairs), 0
	d.space()
	if d.next() == '}' {
		d.i++
	} else {
		for {
			d.space()
			if d.next() != '"' {
				return d.fail()
			}
			s, ok := d.str()
			if !ok {
				return d.fail()
			}
			key := d.key(s)
			d.space()
			if d.next() != ':' {
				return d.fail()
			}
			d.i++
			d.space()
			v := d.value()
			if d.err != nil {
				return nil
			}
			n++
			if d.build {
				d.pairs = append(d.pairs, jsonPair{key, v})
			}
			d.space()
			if c := d.next(); c == ',' {
				d.i++
				continue
			} else if c != '}' {
				return d.fail()
			}
			d.i++
			break
		}
	}
	d.depth--
	if !d.build {
		d.cost += mapBytes(n)
		return nil
	}
	m := make(map[string]any, n)
	for _, p := range d.pairs[base:] {
		m[p.key] = p.val
	}
	clear(d.pairs[base:])
	d.pairs = d.pairs[:base]
	return m
}

func (d *jsonBody) array() any {
	if d.depth++; d.depth > maxJSONDepth {
		return d.fail()
	}
	d.i++
	base, n := len(d.list), 0
	d.space()
	if d.next() == ']' {
		d.i++
	} else {
		for {
			d.space()
			v := d.value()
			if d.err != nil {
				return nil
			}
			n++
			if d.build {
				d.list = append(d.list, v)
			}
			d.space()
			if c := d.next(); c == ',' {
				d.i++
				continue
			} else if c != ']' {
				return d.fail()
			}
			d.i++
			break
		}
	}
	d.depth--
	if !d.build {
		d.cost += 24 + allocBytes(16*n) // the boxed slice header, the elements
		return nil
	}
	l := make([]any, n)
	copy(l, d.list[base:])
	clear(d.list[base:])
	d.list = d.list[:base]
	return l
}

// key is a member's name, allocated once per body.
func (d *jsonBody) key(s []byte) string {
	if k, ok := d.keys[string(s)]; ok {
		return k
	}
	k := string(s)
	d.cost += allocBytes(len(k))
	if len(d.keys) < internCap {
		d.keys[k] = k
	}
	return k
}

// text is a string value; a short one is boxed once per body.
func (d *jsonBody) text(s []byte) any {
	if len(s) <= internMax {
		if v, ok := d.strs[string(s)]; ok {
			return v
		}
		if len(d.strs) < internCap {
			var v any = string(s)
			d.strs[v.(string)] = v
			d.cost += 16 + allocBytes(len(s))
			return v
		}
	}
	if !d.build {
		d.cost += 16 + allocBytes(len(s))
		return nil
	}
	return string(s)
}

func (d *jsonBody) number() any {
	start := d.i
	if d.next() == '-' {
		d.i++
	}
	if d.next() == '0' {
		d.i++
	} else if d.digits() == 0 {
		return d.fail()
	}
	if d.next() == '.' {
		d.i++
		if d.digits() == 0 {
			return d.fail()
		}
	}
	if c := d.next(); c == 'e' || c == 'E' {
		d.i++
		if c := d.next(); c == '+' || c == '-' {
			d.i++
		}
		if d.digits() == 0 {
			return d.fail()
		}
	}
	f, err := strconv.ParseFloat(string(d.data[start:d.i]), 64)
	if err != nil {
		// Out of float64's range: encoding/json refuses it too.
		return d.fail()
	}
	if f >= 0 && f < float64(len(smallInts)) && f == math.Trunc(f) && !math.Signbit(f) {
		return smallInts[int(f)]
	}
	bits := math.Float64bits(f)
	if v, ok := d.nums[bits]; ok {
		return v
	}
	if len(d.nums) < internCap {
		var v any = f
		d.nums[bits] = v
		d.cost += 8
		return v
	}
	if !d.build {
		d.cost += 8
		return nil
	}
	return f
}

func (d *jsonBody) digits() int {
	n := 0
	for c := d.next(); c >= '0' && c <= '9'; c = d.next() {
		d.i++
		n++
	}
	return n
}

// str reads the string at the cursor (a quote) and returns its text: a slice
// of the body, or, when it holds escapes or bytes that are not UTF-8, d.buf,
// unquoted as encoding/json does (a bad byte or a lone surrogate becomes
// U+FFFD).
func (d *jsonBody) str() ([]byte, bool) {
	d.i++
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		if c == '"' {
			d.i++
			return d.data[start : d.i-1], true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	d.buf = append(d.buf[:0], d.data[start:d.i]...)
	for d.i < len(d.data) {
		switch c := d.data[d.i]; {
		case c == '"':
			d.i++
			return d.buf, true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if d.i+1 >= len(d.data) {
				return nil, false
			}
			d.i++
			switch e := d.data[d.i]; e {
			case '"', '\\', '/':
				d.buf = append(d.buf, e)
			case 'b':
				d.buf = append(d.buf, '\b')
			case 'f':
				d.buf = append(d.buf, '\f')
			case 'n':
				d.buf = append(d.buf, '\n')
			case 'r':
				d.buf = append(d.buf, '\r')
			case 't':
				d.buf = append(d.buf, '\t')
			case 'u':
				r := d.hex4(d.i + 1)
				if r < 0 {
					return nil, false
				}
				d.i += 4
				if utf16.IsSurrogate(r) {
					low := rune(-1)
					if d.i+2 < len(d.data) && d.data[d.i+1] == '\\' && d.data[d.i+2] == 'u' {
						low = d.hex4(d.i + 3)
					}
					if pair := utf16.DecodeRune(r, low); pair != utf8.RuneError {
						r = pair
						d.i += 6
					} else {
						r = utf8.RuneError
					}
				}
				d.buf = utf8.AppendRune(d.buf, r)
			default:
				return nil, false
			}
			d.i++
		case c < utf8.RuneSelf:
			d.buf = append(d.buf, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.data[d.i:])
			if r == utf8.RuneError && size == 1 {
				d.buf = utf8.AppendRune(d.buf, utf8.RuneError)
			} else {
				d.buf = append(d.buf, d.data[d.i:d.i+size]...)
			}
			d.i += size
		}
	}
	return nil, false
}

// hex4 reads four hex digits at at, -1 when they are not.
func (d *jsonBody) hex4(at int) rune {
	if at+4 > len(d.data) {
		return -1
	}
	var r rune
	for _, c := range d.data[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// mapBytes is what Go takes for a map[string]any of n entries: a header, and
// groups of 8 slots of 32 bytes kept at most 7/8 full (measured, Go 1.26).
func mapBytes(n int) int64 {
	switch {
	case n == 0:
		return 48
	case n <= 8:
		return 336
	}
	slots := 16
	for slots*7/8 < n {
		slots *= 2
	}
	return 100 + 37*int64(slots)
}

// allocBytes is n rounded up as the allocator does for small sizes.
func allocBytes(n int) int64 {
	switch {
	case n == 0:
		return 0
	case n <= 8:
		return 8
	case n <= 16:
		return 16
	}
	return int64(n+15) &^ 15
}
