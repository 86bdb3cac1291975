package runbook

import (
	"reflect"
	"testing"
)

// TestAsList: for_each takes every list type expr makes.
func TestAsList(t *testing.T) {
	for _, c := range []struct {
		in   any
		want []any
		ok   bool
	}{
		{[]any{"a", 1.0}, []any{"a", 1.0}, true},
		{[]int{1, 2, 3}, []any{1, 2, 3}, true},
		{[]string{"x", "y"}, []any{"x", "y"}, true},
		{[]float64{1.5}, []any{1.5}, true},
		{[2]int{4, 5}, []any{4, 5}, true},
		{[]int{}, []any{}, true},
		{nil, nil, false},
		{"abc", nil, false},
		{[]byte("abc"), nil, false},
		{map[string]any{"a": 1}, nil, false},
		{3, nil, false},
	} {
		got, ok := asList(c.in)
		if ok != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("asList(%#v) = %#v, %v; want %#v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
