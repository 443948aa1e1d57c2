package edge

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchCorpora are the texts BenchmarkCompress compresses: the demo's
// stylesheet and script, and a larger generated mix of JSON and script.
func benchCorpora(b *testing.B) map[string][]byte {
	var demo []byte
	for _, f := range []string{"css/site.css", "js/app.js", "index.html"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "demo", f))
		if err != nil {
			b.Fatal(err)
		}
		demo = append(demo, data...)
	}
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"function", "return", "const", "value", "items", "length", "document", "querySelector", "addEventListener", "null", "true", "false", "price", "name", "id"}
	var gen bytes.Buffer
	for gen.Len() < 1<<20 {
		switch r.IntN(3) {
		case 0:
			fmt.Fprintf(&gen, `{"id":%d,"name":"%s-%d","price":%d.%02d,"tags":["%s","%s"]},`+"\n", r.IntN(100000), words[r.IntN(len(words))], r.IntN(1000), r.IntN(500), r.IntN(100), words[r.IntN(len(words))], words[r.IntN(len(words))])
		default:
			fmt.Fprintf(&gen, "  %s %s_%d = %s(%d, %s);\n", words[r.IntN(3)], words[r.IntN(len(words))], r.IntN(50), words[r.IntN(len(words))], r.IntN(1000), words[r.IntN(len(words))])
		}
	}
	return map[string][]byte{"demo": demo, "text1MiB": gen.Bytes()}
}

// BenchmarkCompress measures each coding at each level on the demo assets
// and a generated text corpus: MB/s of input (SetBytes) and the ratio of
// input to output.
func BenchmarkCompress(b *testing.B) {
	corpora := benchCorpora(b)
	c, err := newCompressor(CompressionConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"demo", "text1MiB"} {
		data := corpora[name]
		for _, cd := range allCodings {
			for lv := levelFast; lv <= levelBest; lv++ {
				b.Run(fmt.Sprintf("%s/%s/%s", name, cd, levelNames[lv]), func(b *testing.B) {
					b.SetBytes(int64(len(data)))
					b.ReportAllocs()
					var out int64
					for b.Loop() {
						cr := c.newReader(bytes.NewReader(data), int64(len(data)), cd, lv)
						n, err := io.Copy(io.Discard, cr)
						cr.close()
						if err != nil {
							b.Fatal(err)
						}
						out = n
					}
					b.ReportMetric(float64(len(data))/float64(out), "ratio")
				})
			}
		}
	}
}
