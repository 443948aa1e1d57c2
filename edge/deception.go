package edge

import (
	"net/url"
	"strings"
)

// Deception armour. Web cache deception lures a signed-in user to a URL
// such as /account/x.css or /account;x.css: the origin's router ignores the
// tail and answers with the user's page, while the URL looks like a static
// file that anyone may fetch from the cache afterwards. The tell is that the
// response is not what the extension names: an HTML page (or an API's JSON)
// where a stylesheet was asked for. Such a response is not stored unless the
// host's Privacy.StoreTypeMismatch says otherwise.
//
// The table below is deliberately generous to what real origins send for
// real files: any image/* for an image extension (image services answer
// /photo.jpg with WebP or AVIF), any video/* or audio/* for media, the
// registered and the historical names for scripts, fonts and playlists,
// both meanings of .ts (MPEG-TS video and TypeScript), and the generic
// application/octet-stream (and S3's binary/octet-stream) for binary types,
// which buckets serve when nobody set a type. A response without
// Content-Type contradicts nothing. Text types (css, js, json, txt, m3u8,
// mpd, svg) accept only their own types: that is where a page served in
// their place would hide.

// typeRule is the media types that fit one family of extensions. A type
// fits when it equals an entry, starts with an entry ending in "/", or ends
// with an entry starting with "+".
type typeRule struct {
	types  []string
	binary bool // application/octet-stream and binary/octet-stream fit too
}

var (
	ruleCSS  = &typeRule{types: []string{"text/css"}}
	ruleJS   = &typeRule{types: []string{"text/javascript", "application/javascript", "application/x-javascript", "application/ecmascript", "text/ecmascript", "application/x-ecmascript", "text/x-javascript"}}
	ruleJSON = &typeRule{types: []string{"application/json", "text/json", "application/x-json", "+json"}}
	ruleText = &typeRule{types: []string{"text/plain"}}
	ruleXML  = &typeRule{types: []string{"application/xml", "text/xml", "+xml"}}
	ruleSVG  = &typeRule{types: []string{"image/svg+xml"}}
	ruleImg  = &typeRule{types: []string{"image/"}, binary: true}
	ruleFont = &typeRule{types: []string{"font/", "application/font-woff", "application/font-woff2", "application/x-font-woff", "application/x-font-ttf", "application/x-font-truetype", "application/x-font-otf", "application/x-font-opentype", "application/font-sfnt", "application/vnd.ms-fontobject"}, binary: true}
	ruleAV   = &typeRule{types: []string{"video/", "audio/", "application/mp4", "application/ogg"}, binary: true}
	// .ts is an MPEG transport stream segment (HLS) or TypeScript source;
	// Debian's mime.types calls it Qt Linguist.
	ruleTS   = &typeRule{types: []string{"video/mp2t", "video/vnd.dlna.mpeg-tts", "application/typescript", "application/x-typescript", "text/typescript", "text/x-typescript", "text/vnd.trolltech.linguist"}, binary: true}
	ruleM3U8 = &typeRule{types: []string{"application/vnd.apple.mpegurl", "application/x-mpegurl", "application/mpegurl", "audio/mpegurl", "audio/x-mpegurl"}}
	ruleMPD  = &typeRule{types: []string{"application/dash+xml", "video/vnd.mpeg.dash.mpd", "application/xml", "text/xml"}}
	rulePDF  = &typeRule{types: []string{"application/pdf"}, binary: true}
	ruleWasm = &typeRule{types: []string{"application/wasm"}, binary: true}
)

// staticExtensions maps a lowercased extension (without the dot) to the
// types that fit it.
var staticExtensions = map[string]*typeRule{
	"css": ruleCSS,
	"js":  ruleJS, "mjs": ruleJS, "cjs": ruleJS,
	"json": ruleJSON, "map": ruleJSON, "webmanifest": ruleJSON,
	"txt": ruleText,
	"xml": ruleXML,
	"svg": ruleSVG,
	"png": ruleImg, "jpg": ruleImg, "jpeg": ruleImg, "gif": ruleImg, "webp": ruleImg, "avif": ruleImg,
	"ico": ruleImg, "bmp": ruleImg, "tif": ruleImg, "tiff": ruleImg, "apng": ruleImg, "jxl": ruleImg,
	"heic": ruleImg, "heif": ruleImg,
	"woff": ruleFont, "woff2": ruleFont, "ttf": ruleFont, "otf": ruleFont, "eot": ruleFont,
	"mp4": ruleAV, "m4v": ruleAV, "m4a": ruleAV, "m4s": ruleAV, "mov": ruleAV, "webm": ruleAV,
	"mkv": ruleAV, "mp3": ruleAV, "aac": ruleAV, "ogg": ruleAV, "ogv": ruleAV, "oga": ruleAV,
	"opus": ruleAV, "wav": ruleAV, "flac": ruleAV, "cmfv": ruleAV, "cmfa": ruleAV,
	"ts":   ruleTS,
	"m3u8": ruleM3U8,
	"mpd":  ruleMPD,
	"pdf":  rulePDF,
	"wasm": ruleWasm,
}

// contradictsExtension reports whether a response's Content-Type
// contradicts the static extension of the request path (escapedPath, the
// canonical form sent upstream). Only successful responses with a body are
// judged: an error page for a missing asset is what negative caching
// stores, and a redirect carries no representation.
func contradictsExtension(escapedPath string, status int, contentType []string) bool {
	if status < 200 || status > 299 || status == 204 || status == 206 || len(contentType) == 0 {
		return false
	}
	rules := pathRules(escapedPath)
	if len(rules) == 0 {
		return false
	}
	for _, ct := range contentType {
		mt := mediaType(ct)
		if mt == "" {
			continue
		}
		for _, r := range rules {
			if !r.fits(mt) {
				return true
			}
		}
	}
	return false
}

// pathRules returns the rules of every static extension the last segment
// of a path may be read as. Origins read a path in different ways (decoding
// %2F, %3B, %23 and %3F or not; dropping ";" parameters or not), so each
// reading counts, and the response must fit all of them.
func pathRules(escapedPath string) []*typeRule {
	var rules []*typeRule
	add := func(seg string) {
		if r := extensionRule(seg); r != nil {
			for _, have := range rules {
				if have == r {
					return
				}
			}
			rules = append(rules, r)
		}
	}
	raw := lastSegment(escapedPath, "/")
	add(raw)                        // as sent: account%3Bx.css
	add(strings.Split(raw, ";")[0]) // ;parameters dropped: x.css;jsessionid=1
	decoded, err := url.PathUnescape(escapedPath)
	if err != nil {
		return rules
	}
	if i := strings.IndexAny(decoded, "?#"); i >= 0 {
		// An origin that decodes before it splits sees a query or a
		// fragment here.
		add(lastSegment(decoded[:i], "/\\"))
	}
	seg := lastSegment(decoded, "/\\")
	add(seg)
	add(strings.Split(seg, ";")[0])
	return rules
}

// lastSegment returns what follows the last of seps in p.
func lastSegment(p, seps string) string {
	if i := strings.LastIndexAny(p, seps); i >= 0 {
		return p[i+1:]
	}
	return p
}

// extensionRule returns the rule of a segment's extension, or nil when it
// has none we know.
func extensionRule(seg string) *typeRule {
	i := strings.LastIndexByte(seg, '.')
	if i < 0 || i == len(seg)-1 {
		return nil
	}
	ext := seg[i+1:]
	if len(ext) > 12 {
		return nil
	}
	return staticExtensions[strings.ToLower(ext)]
}

// mediaType returns the lowercased type/subtype of a Content-Type value,
// parameters dropped (RFC 9110 §8.3.1).
func mediaType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

func (r *typeRule) fits(mt string) bool {
	if r.binary && (mt == "application/octet-stream" || mt == "binary/octet-stream") {
		return true
	}
	for _, t := range r.types {
		switch {
		case strings.HasSuffix(t, "/"):
			if strings.HasPrefix(mt, t) {
				return true
			}
		case t[0] == '+':
			if strings.HasSuffix(mt, t) && strings.IndexByte(mt, '/') > 0 {
				return true
			}
		case mt == t:
			return true
		}
	}
	return false
}
