package edge

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

var extensionTests = []struct {
	givePath   string
	giveStatus int
	giveType   string // "" sends none
	want       bool   // contradicts
}{
	// What real origins send for real files fits.
	{"/app.css", 200, "text/css", false},
	{"/app.css", 200, "text/css; charset=utf-8", false},
	{"/app.css", 200, "TEXT/CSS;charset=UTF-8", false},
	{"/app.js", 200, "application/javascript", false},
	{"/app.js", 200, "text/javascript; charset=utf-8", false},
	{"/app.mjs", 200, "text/javascript", false},
	{"/data.json", 200, "application/json", false},
	{"/site.webmanifest", 200, "application/manifest+json", false},
	{"/app.js.map", 200, "application/json", false},
	{"/robots.txt", 200, "text/plain; charset=utf-8", false},
	{"/photo.jpg", 200, "image/webp", false}, // an image service negotiating formats
	{"/photo.JPG", 200, "image/jpeg", false},
	{"/photo.png", 200, "application/octet-stream", false}, // a bucket without types
	{"/photo.png", 200, "binary/octet-stream", false},
	{"/logo.svg", 200, "image/svg+xml", false},
	{"/favicon.ico", 200, "image/vnd.microsoft.icon", false},
	{"/font.woff2", 200, "font/woff2", false},
	{"/font.woff", 200, "application/font-woff", false},
	{"/v/seg1.ts", 200, "video/mp2t", false},
	{"/src/main.ts", 200, "application/typescript", false},
	{"/src/main.ts", 200, "text/vnd.trolltech.linguist", false},
	{"/v/seg1.m4s", 200, "video/iso.segment", false},
	{"/v/movie.mp4", 200, "video/mp4", false},
	{"/v/index.m3u8", 200, "application/vnd.apple.mpegurl", false},
	{"/v/index.m3u8", 200, "application/x-mpegURL", false},
	{"/v/manifest.mpd", 200, "application/dash+xml", false},
	{"/x.css;jsessionid=1", 200, "text/css", false}, // a servlet parameter
	{"/x.css", 200, "", false},                      // no type contradicts nothing
	{"/account", 200, "text/html", false},           // no static extension
	{"/index.html", 200, "text/html", false},
	{"/archive.tar.gz", 200, "text/html", false}, // an extension the table does not know
	{"/dir/", 200, "text/html", false},
	// Error pages and redirects are not representations of the file:
	// negative caching of a missing asset stays possible.
	{"/missing.css", 404, "text/html", false},
	{"/moved.css", 301, "text/html", false},
	{"/empty.css", 204, "text/html", false},
	// A page served where a static file was asked for contradicts.
	{"/account/x.css", 200, "text/html; charset=utf-8", true},
	{"/account.css", 200, "text/html", true},
	{"/account;x.css", 200, "text/html", true},
	{"/account%2Fx.css", 200, "text/html", true},
	{"/account%3Bx.css", 200, "text/html", true},
	{"/account%23x.css", 200, "text/html", true},
	{"/account%3Fx.css", 200, "text/html", true},
	{"/ACCOUNT/x.CSS", 200, "text/html", true},
	{"/api/me/x.js", 200, "application/json", true},
	{"/api/me.png", 200, "application/json", true},
	{"/account/x.json", 200, "text/html", true},
	{"/account/x.txt", 200, "text/html", true},
	{"/account/x.svg", 200, "application/octet-stream", true}, // text types take no generic type
	{"/account/x.css", 200, "application/octet-stream", true},
	{"/account/x.woff2", 200, "text/html", true},
	{"/account/x.ts", 200, "text/html", true},
	{"/account/x.mp4", 200, "text/plain", true},
	{"/account/x.css", 203, "text/html", true},
}

func TestContradictsExtension(t *testing.T) {
	for _, tt := range extensionTests {
		var ct []string
		if tt.giveType != "" {
			ct = []string{tt.giveType}
		}
		got := contradictsExtension(tt.givePath, tt.giveStatus, ct)
		assert.Equal(t, tt.want, got, "contradictsExtension(%q, %d, %q)", tt.givePath, tt.giveStatus, tt.giveType)
	}
}

// FuzzContradictsExtension: any path and type are judged without panic,
// and a response without Content-Type or with a non-2xx status never
// contradicts.
func FuzzContradictsExtension(f *testing.F) {
	for _, tt := range extensionTests {
		f.Add(tt.givePath, tt.giveType)
	}
	f.Fuzz(func(t *testing.T, path, ct string) {
		contradictsExtension(path, 200, []string{ct})
		if contradictsExtension(path, 200, nil) || contradictsExtension(path, 404, []string{ct}) {
			t.Errorf("contradictsExtension(%q) without a type or for a 404", path)
		}
	})
}
