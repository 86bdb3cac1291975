package steps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// decodeJSON is both passes, as an answer gets them.
func decodeJSON(data []byte) (any, int64, bool) {
	d, ok := measureJSON(data)
	if !ok {
		return nil, 0, false
	}
	cost := d.cost
	return d.decode(), cost, true
}

// sameAsEncodingJSON fails when the decoder and encoding/json disagree on
// whether data is JSON or on its value.
func sameAsEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	var want any
	wantErr := json.Unmarshal(data, &want)
	got, _, ok := decodeJSON(data)
	if ok != (wantErr == nil) {
		t.Fatalf("%q: JSON %v, encoding/json says %v", data, ok, wantErr)
	}
	if ok && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: decoded %#v, encoding/json %#v", data, got, want)
	}
}

func TestDecodeJSONAsEncodingJSONDoes(t *testing.T) {
	for _, s := range jsonSeeds {
		sameAsEncodingJSON(t, []byte(s))
	}
	deep := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	sameAsEncodingJSON(t, []byte(deep))
	sameAsEncodingJSON(t, []byte("["+deep+"]"))
}

var jsonSeeds = []string{
	`{"runstate":"running","vms":[{"id":"1","runstate":"busy"},{"id":"2","error":false}],"n":3,"f":-1.5e3}`,
	`[]`, `{}`, ` [ 1 , 2 ] `, `"x"`, `0`, `-0`, `-0.0`, `255`, `256`, `1e2`, `1E+2`, `1.5`, `true`, `false`, `null`,
	`[0,1,255,255,256,256,-1,-1,1e400]`, `1e400`, `01`, `1.`, `.5`, `-`, `+1`, `1e`, `0x10`, `NaN`,
	`"\u00e9\ud83d\ude00\ud800\udc00\ud800 \udc00 \ud800\u0041 \\ \/ \b\f\n\r\t \""`,
	"\"\xff\xfe caf\xc3\xa9 \xc3\"", "\"a\x01\"", `"\x"`, `"\u12"`, `"\u12G4"`, `"unterminated`, `"a\`,
	`{"a":1,"a":2}`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{1:2}`, `{"a":}`, `[`, `]`, `{`, ``, `   `, `[] x`, `[]]`,
	`tru`, `nul`, `falsey`, "\ufeff[]", `{"":""}`, `{"a":{"b":{"c":[[],{}]}}}`,
	`["running","running","` + strings.Repeat("long ", 10) + `","` + strings.Repeat("long ", 10) + `"]`,
}

// FuzzDecodeJSON holds the decoder to encoding/json: the same bodies are JSON,
// with the same values.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsEncodingJSON(t, data)
	})
}

// largeBody is a JSON list of about size bytes, of objects of one of three
// shapes: tiny ({"id":N}, the worst case), small (three short strings) and a
// VM as an API would answer it (nested, some 20 fields).
func largeBody(shape string, size int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		switch shape {
		case "tiny":
			fmt.Fprintf(&b, `{"id":%d}`, i)
		case "small":
			fmt.Fprintf(&b, `{"id":"%d","name":"vm-%d","runstate":"running"}`, 1000000+i, i)
		case "vm":
			fmt.Fprintf(&b, `{"id":"%d","name":"vm-%d","runstate":"running","rate_limited":false,"error":false,`+
				`"hardware":{"cpus":2,"ram":4096,"svms":1},"interfaces":[{"id":"nic-%d","ip":"10.0.%d.%d","hostname":"host%d","status":"Running"}],`+
				`"configuration_url":"https://cloud.example.com/v2/configurations/%d","can_change_object_state":true}`,
				1000000+i, i, i, i%256, i%200, i, 70000+i%50)
		}
	}
	b.WriteByte(']')
	return b.Bytes()
}

// retained is the heap a decode leaves behind, after collections.
func retained(decode func() any) (any, int64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := decode()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return v, int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// BenchmarkDecodeLargeBody decodes a 9 MB list answer in each shape, with
// encoding/json (what answers were decoded with), json.Decoder with UseNumber,
// and this decoder; it reports the heap the value keeps (retained-MB), that as
// a multiple of the body (x-body), and for this decoder its own estimate
// (estimate-MB), which the run's budget reserves before building the value.
//
//	go test -run '^$' -bench DecodeLargeBody -benchmem -benchtime 3x ./steps
func BenchmarkDecodeLargeBody(b *testing.B) {
	for _, shape := range []string{"tiny", "small", "vm"} {
		raw := largeBody(shape, 9<<20)
		for _, dec := range []struct {
			name   string
			decode func() any
		}{
			{"encoding-json", func() any {
				var v any
				if err := json.Unmarshal(raw, &v); err != nil {
					b.Fatal(err)
				}
				return v
			}},
			{"usenumber", func() any {
				var v any
				d := json.NewDecoder(bytes.NewReader(raw))
				d.UseNumber()
				if err := d.Decode(&v); err != nil {
					b.Fatal(err)
				}
				return v
			}},
			{"runbook", func() any {
				v, _, ok := decodeJSON(raw)
				if !ok {
					b.Fatal("not JSON")
				}
				return v
			}},
		} {
			b.Run(shape+"/"+dec.name, func(b *testing.B) {
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				var kept int64
				for b.Loop() {
					var v any
					v, kept = retained(dec.decode)
					runtime.KeepAlive(v)
				}
				b.ReportMetric(float64(kept)/1e6, "retained-MB")
				b.ReportMetric(float64(kept)/float64(len(raw)), "x-body")
				if dec.name == "runbook" {
					d, _ := measureJSON(raw)
					b.ReportMetric(float64(d.cost)/1e6, "estimate-MB")
				}
			})
		}
	}
}
