// Package outpost holds what the outpost command embeds: the demo media
// under testdata/demo, served by `outpost demo`'s embedded origin.
package outpost

import "embed"

// DemoMedia is the demo site: an HTML page, a stylesheet, a script, an
// image and a font, under the directory "testdata/demo".
//
//go:embed testdata/demo
var DemoMedia embed.FS
