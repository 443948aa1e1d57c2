package purge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var parseTagsTests = []struct {
	name string
	give http.Header
	want []string
}{
	{"none", http.Header{}, nil},
	{"surrogate key spaces", http.Header{"Surrogate-Key": {"home  product-42\tsale"}}, []string{"home", "product-42", "sale"}},
	{"cache tag commas", http.Header{"Cache-Tag": {"home, product-42,sale"}}, []string{"home", "product-42", "sale"}},
	{"both headers and lines", http.Header{"Surrogate-Key": {"a b", "c"}, "Cache-Tag": {"d,a"}}, []string{"a", "b", "c", "d"}},
	{"repeats dropped", http.Header{"Surrogate-Key": {"a a b a"}}, []string{"a", "b"}},
	{"case kept", http.Header{"Surrogate-Key": {"Home home"}}, []string{"Home", "home"}},
	{"only separators", http.Header{"Cache-Tag": {" , ,, "}}, nil},
	{"control characters dropped", http.Header{"Surrogate-Key": {"ok bad\x01tag"}}, []string{"ok"}},
	{"long tag dropped", http.Header{"Surrogate-Key": {"ok " + strings.Repeat("x", MaxTagLen+1)}}, []string{"ok"}},
	{"longest tag kept", http.Header{"Surrogate-Key": {strings.Repeat("x", MaxTagLen)}}, []string{strings.Repeat("x", MaxTagLen)}},
}

func TestParseTags(t *testing.T) {
	for _, tt := range parseTagsTests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ParseTags(tt.give), "ParseTags(%q)", tt.give)
		})
	}
}

func TestParseTagsBoundsTheCount(t *testing.T) {
	var many []string
	for i := range MaxTags + 50 {
		many = append(many, fmt.Sprint("tag-", i%(MaxTags+10)))
	}
	got := ParseTags(http.Header{"Surrogate-Key": {strings.Join(many, " ")}})
	assert.Len(t, got, MaxTags)
	assert.Equal(t, many[:MaxTags], got)
}

func FuzzParseTags(f *testing.F) {
	for _, tt := range parseTagsTests {
		f.Add(strings.Join(tt.give["Surrogate-Key"], "\n"), strings.Join(tt.give["Cache-Tag"], "\n"))
	}
	f.Fuzz(func(t *testing.T, sk, ct string) {
		tags := ParseTags(http.Header{"Surrogate-Key": strings.Split(sk, "\n"), "Cache-Tag": strings.Split(ct, "\n")})
		if len(tags) > MaxTags {
			t.Fatalf("%d tags", len(tags))
		}
		for i, tag := range tags {
			if err := checkTag(tag); err != nil {
				t.Fatalf("tag %q kept: %v", tag, err)
			}
			if slices.Contains(tags[:i], tag) {
				t.Fatalf("tag %q repeated", tag)
			}
		}
		again := ParseTags(http.Header{"Surrogate-Key": {strings.Join(tags, " ")}})
		if !slices.Equal(again, tags) {
			t.Errorf("parse of %q: %q, parsed again %q", tags, tags, again)
		}
	})
}
