package runbook

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Parse reads src as one YAML document, and refuses one whose aliases stand
// for more than MaxAliasNodes nodes or that has more than MaxNodes, so no
// reader of the tree (the loader, the schema check) copies without end. A caller that checks the document
// further (against the JSON Schema) parses once and hands it to Compile.
// yaml.v3 keeps comments in the tree: Compile reads a line comment that
// cut a value short ("name: Deploy #42") as the mistake it is.
func Parse(file string, src []byte) (*yaml.Node, error) {
	doc, err := parseBounded(file, src)
	if err == nil && doc == nil {
		c := newCompileCtx(file, src, nil)
		c.errorAt(Pos{1, 1}, "the file is empty: a runbook needs version: 1, a name and steps")
		return nil, c.errs
	}
	return doc, err
}

// parseBounded is Parse for any of our YAML files: nil for an empty one.
func parseBounded(file string, src []byte) (*yaml.Node, error) {
	doc, err := parse(file, src)
	if err != nil || doc == nil {
		return nil, err
	}
	c := newCompileCtx(file, src, nil)
	c.checkSize(doc)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return doc, nil
}

func parse(file string, src []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		c := newCompileCtx(file, src, nil)
		pos, msg := yamlErrorPos(err), yamlErrorMessage(err)
		if p, ok := misindented(c.lines, pos.Line); ok {
			switch raw := err.Error(); {
			case strings.Contains(raw, "did not find expected key"), strings.Contains(raw, "did not find expected '-' indicator"):
				// yaml.v3 names the line where the block began; point at the line
				// that broke it.
				pos = p
			case strings.Contains(raw, "mapping values are not allowed") && p.Line == pos.Line:
				pos = p
				msg = "YAML syntax: this key is indented deeper than the line above, so YAML reads it as part of that line's value; line it up with the keys around it"
			}
		}
		c.errorAt(pos, "%s", msg)
		return nil, c.errs
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	return &doc, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// yamlErrorPos reads the line of a yaml.v3 syntax error. yaml.v3 reports a
// parser error at its context mark, which is 0-based, and a scanner error 1-based;
// parser errors are the "did not find expected <token>" family.
func yamlErrorPos(err error) Pos {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return Pos{1, 1}
	}
	n, _ := strconv.Atoi(m[1])
	msg := err.Error()[len(m[0]):]
	if strings.HasPrefix(msg, "did not find expected") && !strings.Contains(msg, "comment or line break") &&
		!strings.Contains(msg, "hexdecimal") && !strings.Contains(msg, "alphabetic or numeric") {
		n++
	}
	return Pos{n, 1}
}

// misindented finds the key or item, in the block that begins at line `from`,
// whose indentation fits no level above it: deeper than a line that opens
// nothing, or between two levels. It reads block YAML only, the form runbooks
// take, and skips what it cannot judge (block scalars, flow collections over
// several lines, wrapped text). ok is false when it finds no such line.
func misindented(lines []string, from int) (Pos, bool) {
	var levels []int // indentation of the open blocks, innermost last
	opens := false   // the line before ends with "key:" or "-": a deeper line may follow
	scalar := -1     // inside a | or > block scalar of a node at this indentation
	flow := 0        // depth of a [ ] or { } collection left open
	block := -1      // indentation of the mapping at line `from`: it ends at a line less deep
	for i, line := range lines {
		text := strings.TrimLeft(line, " ")
		ind := len(line) - len(text)
		if text == "" || text[0] == '#' || (scalar >= 0 && ind > scalar) {
			continue
		}
		if flow > 0 {
			flow = max(flow+flowDepth(text), 0)
			continue
		}
		scalar = -1
		top := -1
		if len(levels) > 0 {
			top = levels[len(levels)-1]
		}
		if ind > top && top >= 0 && !opens && !keyLike.MatchString(text) {
			continue // a wrapped value, not a key
		}
		if ind > top && top >= 0 && !opens || ind < top && !slices.Contains(levels, ind) {
			if i+1 >= from && keyLike.MatchString(text) {
				return Pos{i + 1, ind + 1}, true
			}
			return Pos{}, false
		}
		if i+1 > from && ind < block {
			return Pos{}, false
		}
		for len(levels) > 0 && levels[len(levels)-1] > ind {
			levels = levels[:len(levels)-1]
		}
		if len(levels) == 0 || levels[len(levels)-1] < ind {
			levels = append(levels, ind)
		}
		// "- key: value" opens a mapping at the key's column; "- |" is a block
		// scalar of the item.
		owner := ind
		for strings.HasPrefix(text, "- ") {
			rest := strings.TrimLeft(text[1:], " ")
			owner = ind
			ind += len(text) - len(rest)
			text = rest
			levels = append(levels, ind)
		}
		if i+1 == from {
			block = ind
		}
		if j := strings.Index(text, " #"); j >= 0 {
			text = strings.TrimRight(text[:j], " ")
		}
		opens = text == "-" || strings.HasSuffix(text, ":")
		value := text
		if k := strings.Index(text, ": "); k >= 0 {
			value, owner = strings.TrimSpace(text[k+2:]), ind
		}
		if value != "" && strings.IndexAny(value[:1], "|>") == 0 {
			scalar = owner
		}
		flow = max(flowDepth(value), 0)
	}
	return Pos{}, false
}

// keyLike matches a line that holds a key or a sequence item.
var keyLike = regexp.MustCompile(`^(?:-(?:\s|$)|(?:-\s+)*(?:[A-Za-z_$][\w.$-]*|"[^"]*"|'[^']*')\s*:(?:\s|$))`)

// flowDepth is how many [ and { a line opens and leaves open, outside quotes.
func flowDepth(text string) int {
	depth := 0
	var quote byte
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		}
	}
	return depth
}

func yamlErrorMessage(err error) string {
	msg := yamlLine.ReplaceAllString(err.Error(), "")
	msg = strings.TrimPrefix(msg, "yaml: ")
	hint := ""
	switch {
	case strings.Contains(msg, "mapping values are not allowed"):
		hint = `; a value that contains ": " must be quoted, e.g. log: "Step: done"`
	case strings.Contains(msg, "unknown anchor"), strings.Contains(msg, "alphabetic or numeric"):
		hint = "; a value that starts with * or & is read as a YAML alias or anchor: quote it"
	case strings.Contains(msg, "cannot start any token"):
		hint = "; indent with spaces, not tabs, and quote values that start with @ or `"
	case strings.Contains(msg, "did not find expected ',' or"):
		hint = "; inside { } or [ ], quote values that contain ${{ }}, : or #, e.g. {note: \"${{ vars.x }}\"}"
	case strings.Contains(msg, "did not find expected key"):
		hint = "; check the indentation of this line against the lines above"
	}
	return "YAML syntax: " + msg + hint
}

// aliased collects the nodes some alias refers to.
func aliased(n *yaml.Node, seen map[*yaml.Node]bool) map[*yaml.Node]bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		seen[n.Alias] = true
	}
	for _, c := range n.Content {
		aliased(c, seen)
	}
	return seen
}

// traps reports YAML that is legal but silently changes a value's meaning: text
// after " #" taken for a comment, a leading & or ! taken for an anchor or a tag.
func (c *compileCtx) traps(n *yaml.Node, used map[*yaml.Node]bool) {
	if n.Kind == yaml.ScalarNode {
		if lc := n.LineComment; n.Style == 0 && len(lc) > 1 && lc[0] == '#' && lc[1] != ' ' && lc[1] != '#' && n.Tag != "!!null" {
			col := n.Column + len([]rune(n.Value)) + 1
			if line := n.Line; line <= len(c.lines) {
				if i := strings.Index(c.lines[line-1][min(n.Column-1, len(c.lines[line-1])):], "#"); i >= 0 {
					col = n.Column + len([]rune(c.lines[line-1][n.Column-1:n.Column-1+i]))
				}
			}
			c.errorAt(Pos{n.Line, col}, "YAML reads %q as a comment, so this value is only %q: quote the whole value if # belongs to it; if it is a comment, write it %q", truncate(lc, 30), truncate(n.Value, 30), "# "+strings.TrimLeft(truncate(lc, 30), "#"))
		}
		if n.Anchor != "" && !used[n] {
			c.errorf(n, "YAML reads &%s as an anchor, so this value is only %q: quote the value if & belongs to it", n.Anchor, truncate(n.Value, 30))
		}
		if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
			c.errorf(n, "YAML reads %s as a tag: quote the value if ! belongs to it", n.Tag)
		}
	}
	for _, child := range n.Content {
		c.traps(child, used)
	}
}
