package runbook

import (
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// closest returns the candidate nearest to word when it is near enough to be the
// intended one, else "".
func closest(word string, candidates []string) string {
	best, bestD := "", 1<<30
	lw := strings.ToLower(word)
	for _, cand := range candidates {
		d := editDistance(lw, strings.ToLower(cand))
		if d < bestD {
			best, bestD = cand, d
		}
	}
	limit := 2
	if len(word) >= 6 {
		limit = 3
	}
	if bestD <= limit && bestD < len(word) {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions, deletions,
// substitutions and adjacent transpositions each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// unknownKey reports a key that is not allowed; elsewhere names keys that belong to
// another context, so the message can say where the key goes.
func (c *compileCtx) unknownKey(k *yaml.Node, what string, allowed []string, elsewhere map[string]string) {
	if where, ok := elsewhere[k.Value]; ok {
		c.errorf(k, "%q is not allowed here: %s", k.Value, where)
		return
	}
	msg := fmt.Sprintf("unknown key %q in %s", k.Value, what)
	if s := closest(k.Value, allowed); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += fmt.Sprintf(" (allowed: %s)", strings.Join(allowed, ", "))
	}
	c.errorf(k, "%s", msg)
}

// fieldOwners maps each kind's own fields to a message saying which kind they
// belong to, for steps of another kind.
func (c *compileCtx) fieldOwners(current *yaml.Node) map[string]string {
	key := ""
	if current != nil {
		key = current.Value
	}
	if owners, ok := c.owners[key]; ok {
		return owners
	}
	kindsOf := map[string][]string{}
	for _, name := range c.kindNames() {
		if current != nil && current.Value == name {
			continue
		}
		for _, f := range c.kinds[name].Fields() {
			if current != nil && slices.Contains(c.kinds[current.Value].Fields(), f) {
				continue
			}
			kindsOf[f] = append(kindsOf[f], name)
		}
	}
	owners := map[string]string{}
	for f, names := range kindsOf {
		owners[f] = fmt.Sprintf("%s: belongs to %s steps", f, strings.Join(names, " and "))
	}
	if c.owners == nil {
		c.owners = map[string]map[string]string{}
	}
	c.owners[key] = owners
	return owners
}
