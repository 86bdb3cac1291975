package fastyaml

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// seedDocs are every runbook in the repository and the constructs the
// fast parser must read exactly as yaml.v3 does, or leave to it.
func seedDocs(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, pattern := range []string{"../../examples/*.yaml", "../../testdata/valid/*.yaml", "../../testdata/invalid/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil || len(files) == 0 {
			t.Fatalf("no seeds in %s", pattern)
		}
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, src)
		}
	}
	for _, s := range []string{
		"a: 1\nb:\nc:\n  - x\n  -\n  - k: v\n    j: |\n      lit\n       more\n\n    f: >-\n      fold\n      ed\n\n      p\nd: {a: b, c: [1, 2]}\ne: \"q\"\n",
		"# head\n\nversion: 1\nname: 'it''s'\nx: \"a\\\"b\\\\c\\n\"\n",
		"a:\n- 1\n- -2\n- 08\n- 0x1F\n- 1.5\n- 2006-01-02\n- 0\n- 1_000\n- .5\n- +1\n- ~\n- null\n- True\n- on\n",
		"a: x # y\nb: {a: \"b\", c: http://x}\nc: [x, 'y', \"z\", [], {}]\n",
		"a:   # c\nb: |+\n  keep\n\n\nc: >\n  one\n  two\n\n\n  three\nd: |-\n  strip\n",
		"- a\n- - b\n  - c\n- d: 1\n  e: 2\n-\n  f: 3\n",
		"a: |\n  no newline at the end",
		"a: é\nb: [é, x]\nc: 'é' # é\n",
		"steps:\n  - id: s\n    http: GET /v2/configurations/${{ vars.env_id }}\n    wait_for: state.runstate == \"running\"\n",
		"a: b: c\n", "a: &x 1\nb: *x\n", "a: !t x\n", "a: x #y\n", "a: \"x\n  y\"\n", "a: x\n  y\n", "\ta: 1\n", "a: 1\r\n",
		"- " + strings.Join([]string{"1234-ab", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2001-12-14T21:59:43Z",
			"0o-7", "-0o17", "0b", "0o", "0B1", "0O7", "-0x1F", "+0b1", "0b1_0", "1_0.5", "1e", "0x", "9223372036854775807",
			"-9223372036854775809", "18446744073709551615", "+.5", "-.5e3", "0.", "00.1", "1__0", "0b2", "0o8", "-0b-1"}, "\n- ") + "\n",
		"a: [- ]\n", "a: [a, - ]\n", "a: {a: - }\n", "- [- ]\n", "a: [-, b]\n",
		"a: [1,\n  2]\n", "a: |2\n   x\n", "---\na: 1\n", "a: 1\n...\n", "? a\n: b\n", "a: 1\na: 2\n", "a:\n  - 1\n - 2\n",
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// TestMatchesYAMLv3: on every seed the fast parser either gives up or
// builds yaml.v3's tree; and it reads every example, so runbooks get its speed.
func TestMatchesYAMLv3(t *testing.T) {
	for _, src := range seedDocs(t) {
		if msg := compare(src); msg != "" {
			t.Errorf("%s\n--- input:\n%s", msg, src)
		}
	}
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatal("no examples")
	}
	for _, file := range append(files, "../../testdata/valid/design-sample.yaml") {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if parse(src) == nil {
			t.Errorf("%s: the fast parser gave up on it", file)
		}
	}
}

// FuzzParse holds the fast parser to yaml.v3's trees on any input.
func FuzzParse(f *testing.F) {
	for _, src := range seedDocs(f) {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if msg := compare(src); msg != "" {
			t.Fatal(msg)
		}
	})
}

// compare returns how the fast parser's tree of src differs from
// yaml.v3's, or "" when it gave up or they are the same. A bug panics, with
// its stack.
func compare(src []byte) string {
	fast := parse(src)
	if fast == nil {
		return ""
	}
	var want yaml.Node
	if err := yaml.Unmarshal(src, &want); err != nil {
		return fmt.Sprintf("the fast parser read a file yaml.v3 refuses: %v", err)
	}
	return diffNodes("doc", fast, &want)
}

func diffNodes(path string, got, want *yaml.Node) string {
	if got.Kind != want.Kind || got.Style != want.Style || got.Tag != want.Tag || got.Value != want.Value ||
		got.Line != want.Line || got.Column != want.Column || got.Anchor != want.Anchor || got.Alias != nil || want.Alias != nil {
		return fmt.Sprintf("%s: fast %s, yaml.v3 %s", path, describeNode(got), describeNode(want))
	}
	// Comments are not kept; one the loader would report as a trap must
	// have made the fast parser give up.
	if lc := want.LineComment; len(lc) > 1 && lc[0] == '#' && lc[1] != ' ' && lc[1] != '#' {
		return fmt.Sprintf("%s: read past the comment %q", path, lc)
	}
	if len(got.Content) != len(want.Content) {
		return fmt.Sprintf("%s: fast has %d children, yaml.v3 %d", path, len(got.Content), len(want.Content))
	}
	for i := range got.Content {
		if msg := diffNodes(fmt.Sprintf("%s/%d", path, i), got.Content[i], want.Content[i]); msg != "" {
			return msg
		}
	}
	return ""
}

func describeNode(n *yaml.Node) string {
	return fmt.Sprintf("{kind %d style %d tag %s value %q at %d:%d anchor %q alias %v}",
		n.Kind, n.Style, n.Tag, strings.ReplaceAll(n.Value, "\n", `\n`), n.Line, n.Column, n.Anchor, n.Alias != nil)
}

// TestRandomDocuments compares the two parsers on documents built from
// the constructs runbooks use and the ones that trip parsers: byte mutations
// alone rarely make a document the fast parser reads.
func TestRandomDocuments(t *testing.T) {
	r := rand.New(rand.NewPCG(*fastYAMLSeed, 2))
	n, read := *fastYAMLDocs, 0
	for range n {
		var b strings.Builder
		genBlock(r, &b, r.IntN(2), 0)
		src := []byte(b.String())
		if parse(src) != nil {
			read++
		}
		if msg := compare(src); msg != "" {
			t.Fatalf("%s\n--- input:\n%s", msg, src)
		}
	}
	t.Logf("the fast parser read %d of %d documents", read, n)
	if read < n/5 {
		t.Fatalf("the fast parser read only %d of %d documents: the generator no longer exercises it", read, n)
	}
}

var (
	fastYAMLDocs = flag.Int("docs", 5000, "documents TestRandomDocuments compares")
	fastYAMLSeed = flag.Uint64("seed", 1, "the seed of those documents")
)

// Runbook-like scalars and keys, and the traps and edge cases that parsers
// trip on; a document draws one in eight from the second kind.
var (
	runbookScalars = []string{"x", "a b", "20m", "10", "-5", "1.5", "~", "true", "${{ vars.x }}", "a#b", "http://x:80/y?z=1&w",
		"é", "'q'", `"d"`, `"a\"b\\c\n\t"`, "'it''s'", "x # c", "GET /v2/x", `state.runstate == "running"`}
	trapScalars = []string{"0x1F", "1e3", "08", ".5", "null", "on", "y", "2006-01-02", "2006-1-2 15:04:05", "a: b", "a:b", "x,y",
		"[x]", "{x}", `"\/"`, `"\x41"`, "-x", "- x", "?x", "? x", "!x", "&x", "*x", "%x", "@x", "`x", "x #c", "x #", "x #c d",
		"x    ", "b?", "0b101", "0o17", "-0b1", "0b-1", "+1", "1_000", "0", "00", "9223372036854775808", "18446744073709551616",
		"1.", "-.inf", ".nan", "<<", "'unclosed", `"unclosed`, "x\ty", "a, b", "a ]", "#x", "x:", "é: x"}
	runbookKeys = []string{"a", "name", "http", "b-c", "x.y", "s/t"}
	trapKeys    = []string{"1", "true", "null", "y", "on", "_k", "k k", "'q'", "-k", "<<", "é"}
)

func pick(r *rand.Rand, common, rare []string) string {
	if r.IntN(8) > 0 {
		return common[r.IntN(len(common))]
	}
	return rare[r.IntN(len(rare))]
}

func genKey(r *rand.Rand) string    { return pick(r, runbookKeys, trapKeys) }
func genScalar(r *rand.Rand) string { return pick(r, runbookScalars, trapScalars) }

func genFlow(r *rand.Rand, depth int) string {
	var items []string
	for range r.IntN(4) {
		v := genScalar(r)
		if depth < 2 && r.IntN(4) == 0 {
			v = genFlow(r, depth+1)
		}
		if r.IntN(2) == 0 {
			items = append(items, v)
		} else {
			items = append(items, genKey(r)+": "+v)
		}
	}
	sep := []string{", ", ",", " , "}[r.IntN(3)]
	if r.IntN(2) == 0 {
		return "[" + strings.Join(items, sep) + "]"
	}
	return "{" + strings.Join(items, sep) + "}"
}

// genValue writes what follows a key's ": " or an entry's "- ".
func genValue(r *rand.Rand, b *strings.Builder, indent, depth int) {
	switch k := r.IntN(10); {
	case k < 4 || depth > 3:
		b.WriteString(genScalar(r) + "\n")
	case k < 5:
		b.WriteString(genFlow(r, 0) + "\n")
	case k < 7:
		b.WriteString([]string{"|", "|-", "|+", ">", ">-", ">+", "|2", "| # c", ">#c"}[r.IntN(9)] + "\n")
		in := indent + 1 + r.IntN(3)
		for range 1 + r.IntN(4) {
			switch r.IntN(6) {
			case 0:
				b.WriteString("\n")
			case 1:
				b.WriteString(strings.Repeat(" ", in+1+r.IntN(2)) + genScalar(r) + "\n")
			case 2:
				b.WriteString(strings.Repeat(" ", in) + "\n")
			default:
				b.WriteString(strings.Repeat(" ", in) + genScalar(r) + "\n")
			}
		}
	case k < 8:
		b.WriteString([]string{"", " # c", "   ", " #c"}[r.IntN(4)] + "\n") // null, or a block below
		if r.IntN(3) > 0 {
			genBlock(r, b, indent+r.IntN(4), depth+1)
		}
	default:
		genBlock(r, b, -1, depth+1) // compact: on this line
	}
}

// genBlock writes a block mapping or sequence at indent; -1 means it continues
// the current line (a compact collection after "- ").
func genBlock(r *rand.Rand, b *strings.Builder, indent, depth int) {
	compact := indent < 0
	col := indent
	if compact {
		col = len(b.String()) - strings.LastIndexByte(b.String(), '\n') - 1
	}
	seq := r.IntN(2) == 0
	for i := range 1 + r.IntN(4) {
		if i > 0 || !compact {
			if r.IntN(8) == 0 {
				b.WriteString([]string{"\n", "# note\n", "  # indented note\n", "#x\n"}[r.IntN(4)])
			}
			b.WriteString(strings.Repeat(" ", col))
		}
		if seq {
			b.WriteString("- ")
			genValue(r, b, col, depth)
		} else {
			b.WriteString(genKey(r) + ":")
			if r.IntN(6) == 0 {
				b.WriteString("\n")
				if r.IntN(2) == 0 {
					genBlock(r, b, col, depth+1) // a sequence may sit at its key's column
				}
				continue
			}
			b.WriteString(" ")
			genValue(r, b, col, depth)
		}
	}
}

// TestDeepNesting: yaml.v3 refuses nesting past 10000; the fast parser must
// leave such documents to it rather than build what yaml.v3 refuses.
func TestDeepNesting(t *testing.T) {
	for _, src := range []string{
		"a: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n",
		"a: " + strings.Repeat("{b: ", 20000) + "c" + strings.Repeat("}", 20000) + "\n",
		strings.Repeat("- ", 20000) + "x\n",
	} {
		if parse([]byte(src)) != nil {
			t.Errorf("fast parser read %d bytes of nesting", len(src))
		}
	}
}
