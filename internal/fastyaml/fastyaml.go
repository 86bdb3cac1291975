package fastyaml

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Parse returns the tree yaml.v3 would build of src, comments aside, or nil
// where src is outside the subset this package reads; the caller then parses
// it with yaml.v3. A bug that panics here also returns nil, so no runbook
// suffers for it.
func Parse(src []byte) (doc *yaml.Node) {
	defer func() {
		if recover() != nil {
			doc = nil
		}
	}()
	return parse(src)
}

// parse is Parse that lets a bug panic, for the tests to see where. Giving up
// (the giveUp panic) is how every unusual construct and every error is left to
// yaml.v3, so that yaml.v3 stays the judge of them.
func parse(src []byte) (doc *yaml.Node) {
	ok, ascii := plainText(src)
	if !ok {
		return nil
	}
	p := &fastParser{lines: strings.Split(string(src), "\n"), ascii: ascii}
	if n := len(p.lines); p.lines[n-1] == "" {
		p.lines, p.newlineAtEnd = p.lines[:n-1], true
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(giveUp); !ok {
				panic(r)
			}
			doc = nil
		}
	}()
	if !p.skip() {
		return nil
	}
	root := p.block(indentOf(p.lines[p.ln]))
	if p.skip() {
		return nil // content after the root: yaml.v3 says what is wrong
	}
	return &yaml.Node{Kind: yaml.DocumentNode, Line: root.Line, Column: root.Column, Content: []*yaml.Node{root}}
}

// giveUp is the panic that hands a file to yaml.v3.
type giveUp struct{}

type fastParser struct {
	lines        []string
	ln           int          // the line being read
	depth        int          // collections open
	newlineAtEnd bool         // the last line ends with a line break
	slab         []yaml.Node  // nodes are allocated in blocks
	stack        []*yaml.Node // children of the collections being read
	kids         []*yaml.Node // Content slices are cut from blocks too
	ascii        bool         // one byte per character
	colLine      int          // column's last line, byte offset and characters before it
	colOff       int
	colChars     int
}

// plainText reports whether src has only what the fast parser handles: printable
// characters YAML reads as such, and \n line breaks; and whether all are ASCII.
func plainText(src []byte) (ok, ascii bool) {
	ascii = true
	for i := 0; i < len(src); {
		b := src[i]
		if b-' ' < 0x7f-' ' || b == '\n' { // printable ASCII
			i++
			continue
		}
		if b < utf8.RuneSelf {
			return false, false
		}
		ascii = false
		r, size := utf8.DecodeRune(src[i:])
		// YAML reads U+0085, U+2028 and U+2029 as line breaks; C1 controls,
		// surrogates and the BOM are not printable.
		if (r == utf8.RuneError && size == 1) || r < 0xa0 || (r >= 0xd800 && r < 0xe000) || r == 0x2028 || r == 0x2029 || r == 0xfeff || r == 0xfffe || r == 0xffff {
			return false, false
		}
		i += size
	}
	return true, ascii
}

func (p *fastParser) node(kind yaml.Kind, tag string, ln, col int) *yaml.Node {
	if len(p.slab) == 0 {
		p.slab = make([]yaml.Node, p.chunk())
	}
	n := &p.slab[0]
	p.slab = p.slab[1:]
	n.Kind, n.Tag, n.Line, n.Column = kind, tag, ln+1, p.column(ln, col)
	return n
}

// chunk is how many nodes or children to allocate at once: about what a file
// of this many lines holds, up to a bound, so a small file costs little.
func (p *fastParser) chunk() int { return min(2*len(p.lines)+8, 1024) }

// children ends a collection whose children are on the stack from from: an
// exact-size Content, with no room to grow into a neighbour's.
func (p *fastParser) children(from int) []*yaml.Node {
	n := len(p.stack) - from
	if len(p.kids) < n {
		p.kids = make([]*yaml.Node, max(n, p.chunk()))
	}
	c := p.kids[:n:n]
	p.kids = p.kids[n:]
	copy(c, p.stack[from:])
	p.stack = p.stack[:from]
	return c
}

// column is yaml.v3's 1-based column of byte offset i: it counts characters.
// Nodes are made left to right, so it counts on from the last one: counting
// from the start of the line each time is quadratic on a long flow line.
func (p *fastParser) column(ln, i int) int {
	if p.ascii {
		return i + 1
	}
	if ln != p.colLine || i < p.colOff {
		p.colLine, p.colOff, p.colChars = ln, 0, 0
	}
	p.colChars += utf8.RuneCountInString(p.lines[ln][p.colOff:i])
	p.colOff = i
	return p.colChars + 1
}

func indentOf(line string) int { return skipSpaces(line, 0) }

func skipSpaces(line string, i int) int {
	for i < len(line) && line[i] == ' ' {
		i++
	}
	return i
}

// skip moves to the next line with content, past blank and comment lines; it
// reports whether there is one.
func (p *fastParser) skip() bool {
	for ; p.ln < len(p.lines); p.ln++ {
		line := p.lines[p.ln]
		i := indentOf(line)
		if i == len(line) {
			continue
		}
		if line[i] != '#' {
			return true
		}
		checkComment(line, i)
	}
	return false
}

// checkComment checks the comment at line[i]: "#x" may be a value YAML cut off, which
// the loader reports from yaml.v3's tree.
func checkComment(line string, i int) {
	if i+1 < len(line) && line[i+1] != ' ' && line[i+1] != '#' {
		panic(giveUp{})
	}
}

// restIsComment checks that only spaces and a comment follow line[i:].
func restIsComment(line string, i int) {
	j := skipSpaces(line, i)
	if j == len(line) {
		return
	}
	if line[j] != '#' || j == i {
		panic(giveUp{})
	}
	checkComment(line, j)
}

func isEntry(t string) bool {
	return t == "-" || strings.HasPrefix(t, "- ")
}

// keyEnd returns the length of the simple key t starts with, if it does: a word
// of letters, digits and _-./ followed by ": " or a ':' at the end of the line.
func keyEnd(t string) (int, bool) {
	i := 0
	for i < len(t) {
		c := t[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (i > 0 && (c == '-' || c == '.' || c == '/')) {
			i++
			continue
		}
		break
	}
	// YAML allows a simple key at most 1024 characters; 1000 bytes is safely less.
	if i == 0 || i > 1000 || i == len(t) || t[i] != ':' || (i+1 < len(t) && t[i+1] != ' ') {
		return 0, false
	}
	return i, true
}

// block reads the mapping or sequence whose first line is the current one, at
// byte offset col (offsets in a line are bytes; column makes Node columns).
func (p *fastParser) block(col int) *yaml.Node {
	t := p.lines[p.ln][col:]
	if isEntry(t) {
		return p.sequence(col)
	}
	if _, ok := keyEnd(t); ok {
		return p.mapping(col)
	}
	panic(giveUp{})
}

// enter counts a collection opened, and gives deep nesting to yaml.v3, which
// limits it.
func (p *fastParser) enter() {
	if p.depth++; p.depth > 100 {
		panic(giveUp{})
	}
}

func (p *fastParser) sequence(col int) *yaml.Node { return p.collection(col, true) }
func (p *fastParser) mapping(col int) *yaml.Node  { return p.collection(col, false) }

// collection reads a block sequence or mapping at offset col, from the current
// line to the first line less indented, or at col but not an entry of it.
func (p *fastParser) collection(col int, seq bool) *yaml.Node {
	p.enter()
	defer func() { p.depth-- }()
	kind, tag := yaml.MappingNode, "!!map"
	if seq {
		kind, tag = yaml.SequenceNode, "!!seq"
	}
	n := p.node(kind, tag, p.ln, col)
	from := len(p.stack)
	for {
		if seq {
			p.stack = append(p.stack, p.value(col, col, true))
		} else {
			line := p.lines[p.ln]
			k, ok := keyEnd(line[col:])
			if !ok {
				panic(giveUp{})
			}
			p.stack = append(p.stack, p.plain(line[col:col+k], p.ln, col), p.value(col+k, col, false))
		}
		if !p.skip() {
			break
		}
		line := p.lines[p.ln]
		ind := indentOf(line)
		if ind > col {
			panic(giveUp{})
		}
		if ind < col || (seq && !isEntry(line[ind:])) {
			break
		}
	}
	n.Content = p.children(from)
	return n
}

// value reads the value after the indicator (a key's ':' or an entry's '-') at
// offset at of the current line, in a collection at offset col.
func (p *fastParser) value(at, col int, inSeq bool) *yaml.Node {
	line := p.lines[p.ln]
	r := skipSpaces(line, at+1)
	if r < len(line) && line[r] != '#' {
		return p.inline(r, col, inSeq)
	}
	restIsComment(line, at+1)
	return p.below(at, col, inSeq)
}

// below reads a value written on the lines after its indicator at offset at: a
// block more indented than the parent at offset col, a sequence at the parent's
// offset after a key, or else nothing, a null.
func (p *fastParser) below(at, col int, inSeq bool) *yaml.Node {
	ln := p.ln
	p.ln++
	if p.skip() {
		line := p.lines[p.ln]
		ind := indentOf(line)
		if ind > col {
			return p.block(ind)
		}
		if ind == col && !inSeq && isEntry(line[ind:]) {
			return p.sequence(ind)
		}
	}
	return p.node(yaml.ScalarNode, "!!null", ln, at+1)
}

// inline reads the value that starts at offset r of the current line, in a
// collection at offset col (a sequence when inSeq).
func (p *fastParser) inline(r, col int, inSeq bool) *yaml.Node {
	line := p.lines[p.ln]
	t := line[r:]
	switch t[0] {
	case '"', '\'', '{', '[':
		n, end := p.flow(line, r)
		restIsComment(line, end)
		p.ln++
		return n
	case '|', '>':
		return p.blockScalar(r, col)
	case '-':
		if isEntry(t) {
			if !inSeq {
				panic(giveUp{})
			}
			return p.sequence(r)
		}
	}
	if _, ok := keyEnd(t); ok {
		if !inSeq {
			panic(giveUp{})
		}
		return p.mapping(r)
	}
	end := len(line)
	if i := strings.Index(t, " #"); i >= 0 {
		end = r + i
		checkComment(line, end+1)
	}
	v := strings.TrimRight(line[r:end], " ")
	if startsBadly(v) || strings.Contains(v, ": ") || strings.HasSuffix(v, ":") {
		panic(giveUp{})
	}
	n := p.plain(v, p.ln, r)
	p.ln++
	return n
}

// startsBadly reports whether a plain scalar starts with a YAML indicator.
func startsBadly(v string) bool {
	if v == "" {
		return true
	}
	switch v[0] {
	case '-':
		return len(v) > 1 && v[1] == ' '
	case '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return true
	}
	return false
}

// plain is a plain scalar, with the tag yaml.v3 resolves it to.
func (p *fastParser) plain(v string, ln, col int) *yaml.Node {
	n := p.node(yaml.ScalarNode, plainTag(v), ln, col)
	n.Value = v
	return n
}

// plainTag is yaml.v3's resolution of a plain scalar's tag (resolve in its
// resolve.go, v3.0.6), in the same order; the tests compare it with yaml.v3's.
func plainTag(v string) string {
	switch v {
	case "true", "True", "TRUE", "false", "False", "FALSE":
		return "!!bool"
	case "~", "null", "Null", "NULL":
		return "!!null"
	case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		return "!!float"
	case "<<":
		return "!!merge"
	}
	switch c := v[0]; {
	case c == '.':
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return "!!float"
		}
	case c == '+' || c == '-' || (c >= '0' && c <= '9'):
		if isTimestamp(v) {
			return "!!timestamp"
		}
		for i := range len(v) {
			switch c := v[i]; {
			case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', strings.IndexByte("xXoO_+-.", c) >= 0:
			default:
				return "!!str" // 20m, 10s: no number has other characters
			}
		}
		plain := strings.ReplaceAll(v, "_", "")
		if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return "!!int"
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return "!!int"
		}
		if yamlFloat.MatchString(plain) {
			if _, err := strconv.ParseFloat(plain, 64); err == nil {
				return "!!float"
			}
		}
		// Then yaml.v3's own reading of 0b and 0o, which takes 0b-1 too.
		for _, f := range []struct {
			prefix string
			base   int
		}{{"0b", 2}, {"0o", 8}} {
			if strings.HasPrefix(plain, f.prefix) {
				if _, err := strconv.ParseInt(plain[2:], f.base, 64); err == nil {
					return "!!int"
				}
				if _, err := strconv.ParseUint(plain[2:], f.base, 64); err == nil {
					return "!!int"
				}
			} else if strings.HasPrefix(plain, "-"+f.prefix) {
				if _, err := strconv.ParseInt("-"+plain[3:], f.base, 64); err == nil {
					return "!!int"
				}
			}
		}
	}
	return "!!str"
}

// isTimestamp is yaml.v3's parseTimestamp: four digits and a '-', then one of
// the layouts it tries.
func isTimestamp(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, layout := range []string{"2006-1-2T15:4:5.999999999Z07:00", "2006-1-2t15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999", "2006-1-2"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

var yamlFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// flow reads a quoted scalar or a flow collection that closes on this line,
// from line[i]; it returns the node and the offset after it.
func (p *fastParser) flow(line string, i int) (*yaml.Node, int) {
	switch line[i] {
	case '"', '\'':
		return p.quoted(line, i)
	case '{', '[':
		p.enter()
		defer func() { p.depth-- }()
		kind, tag, closer := yaml.SequenceNode, "!!seq", byte(']')
		if line[i] == '{' {
			kind, tag, closer = yaml.MappingNode, "!!map", '}'
		}
		n := p.node(kind, tag, p.ln, i)
		n.Style = yaml.FlowStyle
		i = skipSpaces(line, i+1)
		if i < len(line) && line[i] == closer {
			return n, i + 1
		}
		from := len(p.stack)
		for {
			var item *yaml.Node
			item, i = p.flowItem(line, i)
			p.stack = append(p.stack, item)
			if closer == '}' {
				if !strings.HasPrefix(line[i:], ": ") || item.Style != 0 || len(item.Value) > 1000 { // as keyEnd
					panic(giveUp{})
				}
				item, i = p.flowItem(line, skipSpaces(line, i+2))
				p.stack = append(p.stack, item)
			}
			i = skipSpaces(line, i)
			switch {
			case i < len(line) && line[i] == closer:
				n.Content = p.children(from)
				return n, i + 1
			case i < len(line) && line[i] == ',':
				i = skipSpaces(line, i+1)
				if i < len(line) && line[i] == closer {
					panic(giveUp{})
				}
			default:
				panic(giveUp{})
			}
		}
	}
	panic(giveUp{})
}

// flowItem reads one item of a flow collection: a nested collection, a quoted
// scalar, or a plain scalar that stops at a flow indicator.
func (p *fastParser) flowItem(line string, i int) (*yaml.Node, int) {
	if i >= len(line) {
		panic(giveUp{})
	}
	switch line[i] {
	case '"', '\'', '{', '[':
		return p.flow(line, i)
	}
	j := i
	for j < len(line) && strings.IndexByte(",[]{}:#?", line[j]) < 0 {
		j++
	}
	if startsBadly(line[i:j]) { // untrimmed: "- " starts a block entry, even here
		panic(giveUp{})
	}
	v := strings.TrimRight(line[i:j], " ")
	return p.plain(v, p.ln, i), i + len(v)
}

// quoted reads a quoted scalar that ends on this line. Double-quoted escapes
// other than \" \\ \n and \t are left to yaml.v3.
func (p *fastParser) quoted(line string, i int) (*yaml.Node, int) {
	q := line[i]
	var b strings.Builder
	start := i + 1
	for j := start; j < len(line); j++ {
		c := line[j]
		switch {
		case c == q && q == '\'' && j+1 < len(line) && line[j+1] == '\'':
			b.WriteString(line[start : j+1])
			j++
			start = j + 1
		case c == q:
			v := line[start:j]
			if b.Len() > 0 {
				b.WriteString(v)
				v = b.String()
			}
			n := p.node(yaml.ScalarNode, "!!str", p.ln, i)
			n.Value = v
			n.Style = yaml.SingleQuotedStyle
			if q == '"' {
				n.Style = yaml.DoubleQuotedStyle
			}
			return n, j + 1
		case c == '\\' && q == '"':
			if j+1 >= len(line) {
				panic(giveUp{})
			}
			b.WriteString(line[start:j])
			switch e := line[j+1]; e {
			case '"', '\\':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				panic(giveUp{})
			}
			j++
			start = j + 1
		}
	}
	panic(giveUp{})
}

// blockScalar reads a | or > scalar whose indicator is at offset r, in a
// collection at offset col.
func (p *fastParser) blockScalar(r, col int) *yaml.Node {
	ln, line := p.ln, p.lines[p.ln]
	style := yaml.LiteralStyle
	if line[r] == '>' {
		style = yaml.FoldedStyle
	}
	chomp := byte(0)
	i := r + 1
	if i < len(line) && (line[i] == '-' || line[i] == '+') {
		chomp = line[i]
		i++
	}
	restIsComment(line, i)
	p.ln++
	if p.ln >= len(p.lines) {
		panic(giveUp{})
	}
	indent := indentOf(p.lines[p.ln])
	if indent <= col || indent == len(p.lines[p.ln]) {
		panic(giveUp{}) // empty, or led by blank lines
	}
	lines := 0 // content lines so far
	empty := 0 // empty lines since the last content line
	var b strings.Builder
	for ; p.ln < len(p.lines); p.ln++ {
		line := p.lines[p.ln]
		if line == "" {
			empty++
			continue
		}
		ind := indentOf(line)
		if ind == len(line) {
			panic(giveUp{}) // spaces only: their count matters to YAML
		}
		if ind < indent {
			break
		}
		text := line[indent:]
		if lines > 0 { // the first has no empty lines before it: see above
			switch {
			case style == yaml.LiteralStyle:
				b.WriteByte('\n')
			case text[0] == ' ':
				panic(giveUp{}) // more-indented lines fold differently
			case empty == 0:
				b.WriteByte(' ') // folded
			}
			b.WriteString(strings.Repeat("\n", empty))
		}
		b.WriteString(text)
		lines++
		empty = 0
	}
	// The last content line's break is kept unless stripped, and trailing empty
	// lines only with +. That line (p.ln-empty-1) has a break unless it is the
	// file's last and the file does not end with one.
	if chomp != '-' && (p.ln-empty < len(p.lines) || p.newlineAtEnd) {
		b.WriteByte('\n')
		if chomp == '+' {
			b.WriteString(strings.Repeat("\n", empty))
		}
	}
	n := p.node(yaml.ScalarNode, "!!str", ln, r)
	n.Style = style
	n.Value = b.String()
	return n
}
