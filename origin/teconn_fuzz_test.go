package origin

import (
	"bytes"
	"testing"
)

// FuzzFixTransferEncoding: the rewrite of response header blocks whose
// transfer coding net/http cannot read is idempotent, leaves a block ending
// as it did, and either returns the block untouched or one without
// Transfer-Encoding and Content-Length.
func FuzzFixTransferEncoding(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		if bytes.Index(block, []byte("\r\n\r\n")) != len(block)-4 {
			return // teConn passes one whole header block, ended by its first empty line
		}
		out := fixTransferEncoding(bytes.Clone(block))
		if again := fixTransferEncoding(bytes.Clone(out)); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %q → %q → %q", block, out, again)
		}
		if bytes.HasSuffix(block, []byte("\r\n\r\n")) != bytes.HasSuffix(out, []byte("\r\n\r\n")) {
			t.Fatalf("%q → %q: the block's end changed", block, out)
		}
		if !bytes.Equal(out, block) {
			for _, l := range bytes.Split(out, []byte("\r\n"))[1:] {
				name, _, ok := bytes.Cut(l, []byte(":"))
				if !ok {
					continue // no field line: net/http refuses the response
				}
				name = bytes.TrimSpace(name)
				if bytes.EqualFold(name, []byte("Transfer-Encoding")) || bytes.EqualFold(name, []byte("Content-Length")) {
					t.Fatalf("%q → %q keeps %q", block, out, l)
				}
			}
		}
	})
}
