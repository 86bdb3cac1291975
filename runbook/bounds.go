package runbook

import (
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest runbook file read. A runbook is steps written by
// hand: the largest in the wild are a few hundred steps, tens of KiB. 4 MiB is
// a hundred times that, and small enough that parsing it (about ten times its
// size in memory) never strains the machine.
const MaxFileSize = 4 << 20

// MaxAliasNodes bounds the nodes YAML aliases may add to a runbook. An alias
// (*name) stands for a copy of what its anchor (&name) marks, and an anchor may
// hold aliases itself: nine levels of ten copies make a 700-byte file stand for
// a billion nodes ("billion laughs"), which every reader of the tree (the
// loader, the schema check) would copy. Honest reuse is a block of defaults or
// headers (tens of nodes) used by each of some hundreds of steps: well under
// 10,000 nodes. 100,000 leaves ten times that, and costs a few tens of MiB to
// compile.
const MaxAliasNodes = 100_000

// MaxNodes bounds the nodes of a runbook (keys, values, list items), aliases
// expanded. The largest honest runbooks, generated ones of thousands of steps,
// have some 100,000; the loader and the schema check hold about 300 bytes for
// each node, so 500,000 keeps a whole load within a few hundred MiB. A file
// of MaxFileSize can hold four times as many (a flat list of digits), and
// is refused once parsed, before anything copies it.
const MaxNodes = 500_000

// TooLargeError is a runbook file over MaxFileSize, refused before it is
// parsed (exit 65).
type TooLargeError struct {
	What string // "runbook" or "var file"
	File string
	Size int64 // bytes; -1 when the file is not a regular one and only "more" is known
}

func (e *TooLargeError) Error() string {
	size := "more than 4 MiB"
	if e.Size >= 0 {
		size = fmt.Sprintf("%s (%d bytes)", mib(e.Size), e.Size)
	}
	msg := fmt.Sprintf("%s is %s, over the %s a %s may be: is it the right file?", e.File, size, mib(MaxFileSize), e.What)
	if e.What == "runbook" {
		msg += " Split a runbook this long into several"
	}
	return msg
}

// ExitCode is 65: such a file is not a runbook this program runs.
func (e *TooLargeError) ExitCode() int { return ExitInvalid }

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// ReadFile reads a runbook file of at most MaxFileSize bytes. A larger one is
// refused from its size, or, when it has none (a pipe), once more than the
// limit has been read: never read whole.
func ReadFile(path string) ([]byte, error) { return readFile(path, "runbook") }

func readFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &ReadError{What: what, File: path, Err: err}
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, &TooLargeError{What: what, File: path, Size: st.Size()}
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &ReadError{What: what, File: path, Err: err}
	}
	if len(src) > MaxFileSize {
		return nil, &TooLargeError{What: what, File: path, Size: -1}
	}
	return src, nil
}

// checkSize counts the document's nodes as its readers see them, aliases
// expanded, without expanding any. It refuses the alias that takes the nodes
// aliases stand for past MaxAliasNodes, an alias inside the very node its
// anchor marks (which no reader could ever finish copying), and the node that
// takes the whole count past MaxNodes. Every reader of the tree (the loader,
// the schema check) follows aliases; bounded here, none of them can be made to
// copy without end.
func (c *compileCtx) checkSize(doc *yaml.Node) {
	a := &nodeCounter{c: c, size: map[*yaml.Node]int{}, open: map[*yaml.Node]bool{}}
	a.walk(doc)
}

type nodeCounter struct {
	c     *compileCtx
	size  map[*yaml.Node]int  // the expanded size of each anchored node counted
	open  map[*yaml.Node]bool // anchored nodes whose children are being counted
	added int                 // nodes the aliases seen so far stand for
	total int                 // nodes seen so far, aliases expanded
	done  bool                // a problem is reported: stop
}

// walk returns the number of nodes n stands for, aliases expanded, and adds
// what each alias stands for to the count; in document order, so an anchor is
// counted before its aliases.
func (a *nodeCounter) walk(n *yaml.Node) int {
	if a.done || n == nil {
		return 0
	}
	if n.Kind == yaml.AliasNode {
		t := n.Alias
		if t == nil {
			return 1
		}
		if a.open[t] {
			a.c.errorf(n, "YAML alias *%s is inside the value its anchor &%s marks, so it would stand for itself without end: write the value out instead", n.Value, t.Anchor)
			a.done = true
			return 0
		}
		size, ok := a.size[t]
		if !ok {
			size = a.walk(t)
		}
		a.added += size
		a.total += size
		if a.added > MaxAliasNodes && !a.done {
			a.c.errorf(n, "YAML aliases make this runbook stand for more than %d nodes (this *%s alone copies %d): it looks like a \"billion laughs\" file, not a runbook. Use anchors for small shared blocks (defaults, headers) and write the rest out",
				MaxAliasNodes, n.Value, size)
			a.done = true
		}
		return size
	}
	if a.total++; a.total > MaxNodes {
		a.c.errorf(n, "this runbook has more than %d YAML nodes (keys, values and list items): it is not a runbook a person wrote; split it, or read long lists at run time (from the API, or a command's output)", MaxNodes)
		a.done = true
		return 0
	}
	if n.Anchor != "" {
		a.open[n] = true
	}
	size := 1
	for _, child := range n.Content {
		size += a.walk(child)
		if a.done {
			return 0
		}
	}
	if n.Anchor != "" {
		delete(a.open, n)
		a.size[n] = size
	}
	return size
}
