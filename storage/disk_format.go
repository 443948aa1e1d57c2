package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cespare/xxhash/v2"
)

// An object file of the disk tier is laid out as
//
//	[0, area)                 header: fixed part, then the encoded Meta, then slack
//	[area, area+size)         body
//	[area+size, +8*chunks)    chunk table, present only when the body spans
//	                          more than one chunk
//
// The fixed part of the header (little-endian):
//
//	 0  magic "OPDK"
//	 4  version        uint16 (2; 1 is read too: its meta ends before
//	                   OriginTime, which then decodes as zero)
//	 6  chunk shift    uint8: the body is checksummed in chunks of 1<<shift bytes
//	 7  reserved       uint8, zero
//	 8  area           uint32: the body's offset
//	12  meta length    uint32
//	16  body size      uint64
//	24  body checksum  uint64: xxhash64 of the body when it is one chunk (or
//	                   empty), else xxhash64 of the chunk table, which holds
//	                   the xxhash64 of each chunk
//	32  reserved       uint64, zero
//	40  header sum     uint64: xxhash64 of bytes [0,40) followed by the meta
//	48  meta           the Meta but Size, encoded by appendMeta
//
// The slack after the meta lets Update rewrite the header in place when the
// new metadata is not much longer. A reader trusts nothing before the header
// sum matches, and no body byte before its chunk's checksum matches (see
// disk_verify.go), so a torn, truncated or bit-rotted file is detected and
// dropped rather than served.
const (
	diskMagic   = "OPDK"
	diskVersion = 2
	// diskVersionNoOrigin is the version before Meta.OriginTime: its files
	// stay readable, and are rewritten as diskVersion by Update.
	diskVersionNoOrigin = 1
	fixedHeaderLen      = 48
	// chunkShift sets the checksummed chunk to 1 MiB: a read of a few bytes
	// verifies at most one chunk, and the chunk table of a 1 GiB body is 8 KiB.
	chunkShift = 20
	chunkSize  = 1 << chunkShift
	// headerAlign and headerSlack size the header area: room for the meta
	// and at least headerSlack more bytes, rounded up to headerAlign.
	headerAlign = 512
	headerSlack = 256
	// maxMetaLen bounds the encoded Meta, so a damaged length field cannot
	// make a reader allocate without limit.
	maxMetaLen = 1 << 20
	// headerProbe is how much of a file a reader reads first: the whole
	// header area of most objects.
	headerProbe = 4096
)

// errCorrupt reports a file whose header or body does not verify. The disk
// tier drops such a file and reports ErrNotFound or a read error; the
// sentinel never leaves the package unwrapped.
var errCorrupt = errors.New("disk tier: corrupt object")

// Kinds of corruption, for outpost_disk_corrupt_total; both match errCorrupt.
var (
	errSize = fmt.Errorf("%w: file length", errCorrupt)
	errBody = fmt.Errorf("%w: body checksum", errCorrupt)
)

// fileID names an object file: the first 128 bits of the SHA-256 of its key.
// A cryptographic hash keeps clients from choosing keys that collide, which
// would let them evict each other's objects; the full key in the header
// guards against the collisions that remain.
type fileID [16]byte

func keyID(key string) fileID {
	// A key up to the buffer's length is hashed from the stack: converting
	// it to a []byte would allocate on every Get.
	var buf [512]byte
	var sum [sha256.Size]byte
	if len(key) <= len(buf) {
		sum = sha256.Sum256(append(buf[:0], key...))
	} else {
		sum = sha256.Sum256([]byte(key))
	}
	return fileID(sum[:16])
}

// String returns the id in hexadecimal, the object's file name.
func (id fileID) String() string { return hex.EncodeToString(id[:]) }

// parseFileID parses a file name made by fileID.String.
func parseFileID(name string) (fileID, bool) {
	var id fileID
	if len(name) != 2*len(id) {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(name)); err != nil {
		return id, false
	}
	// Only the lowercase spelling is ours.
	return id, id.String() == name
}

// fileHeader is the decoded fixed part of a header.
type fileHeader struct {
	version uint16 // of the file read; files are written as diskVersion
	area    int64
	metaLen int
	size    int64
	bodySum uint64
}

// chunks returns the number of checksummed chunks of the body.
func (h *fileHeader) chunks() int64 { return (h.size + chunkSize - 1) >> chunkShift }

// tableLen returns the length of the chunk table after the body.
func (h *fileHeader) tableLen() int64 {
	if n := h.chunks(); n > 1 {
		return 8 * n
	}
	return 0
}

// fileSize returns the length a file with this header has.
func (h *fileHeader) fileSize() int64 { return h.area + h.size + h.tableLen() }

// headerArea returns the size of the header area for an encoded meta of
// length metaLen.
func headerArea(metaLen int) int64 {
	n := int64(fixedHeaderLen + metaLen + headerSlack)
	return (n + headerAlign - 1) / headerAlign * headerAlign
}

// putHeader writes the fixed header for meta (already at buf[fixedHeaderLen:])
// into buf[:fixedHeaderLen] and seals it with the header sum.
func putHeader(buf []byte, h fileHeader) {
	copy(buf, diskMagic)
	binary.LittleEndian.PutUint16(buf[4:], diskVersion)
	buf[6], buf[7] = chunkShift, 0
	binary.LittleEndian.PutUint32(buf[8:], uint32(h.area))
	binary.LittleEndian.PutUint32(buf[12:], uint32(h.metaLen))
	binary.LittleEndian.PutUint64(buf[16:], uint64(h.size))
	binary.LittleEndian.PutUint64(buf[24:], h.bodySum)
	binary.LittleEndian.PutUint64(buf[32:], 0)
	binary.LittleEndian.PutUint64(buf[40:], headerSum(buf, h.metaLen))
}

func headerSum(buf []byte, metaLen int) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.Write(buf[:40])
	d.Write(buf[fixedHeaderLen : fixedHeaderLen+metaLen])
	return d.Sum64()
}

// parseFixed decodes the fixed header at the start of buf, checking the
// fields that do not need the meta. It returns the header and how many bytes
// of the file the whole header (fixed part and meta) takes.
func parseFixed(buf []byte) (fileHeader, error) {
	var h fileHeader
	if len(buf) < fixedHeaderLen {
		return h, fmt.Errorf("%w: %d-byte header", errCorrupt, len(buf))
	}
	if string(buf[:4]) != diskMagic {
		return h, fmt.Errorf("%w: bad magic %q", errCorrupt, buf[:4])
	}
	h.version = binary.LittleEndian.Uint16(buf[4:])
	if h.version != diskVersion && h.version != diskVersionNoOrigin {
		return h, fmt.Errorf("%w: version %d, want %d", errCorrupt, h.version, diskVersion)
	}
	if buf[6] != chunkShift {
		return h, fmt.Errorf("%w: chunk shift %d, want %d", errCorrupt, buf[6], chunkShift)
	}
	h.area = int64(binary.LittleEndian.Uint32(buf[8:]))
	h.metaLen = int(binary.LittleEndian.Uint32(buf[12:]))
	size := binary.LittleEndian.Uint64(buf[16:])
	h.bodySum = binary.LittleEndian.Uint64(buf[24:])
	if h.metaLen > maxMetaLen || int64(fixedHeaderLen+h.metaLen) > h.area || size > 1<<62 {
		return h, fmt.Errorf("%w: header fields out of range", errCorrupt)
	}
	h.size = int64(size)
	return h, nil
}

// parseHeader decodes and verifies a whole header: buf holds at least the
// fixed part and the meta. The returned Meta shares one string allocation
// for all its strings.
func parseHeader(buf []byte) (fileHeader, Meta, error) {
	h, err := parseFixed(buf)
	if err != nil {
		return h, Meta{}, err
	}
	if len(buf) < fixedHeaderLen+h.metaLen {
		return h, Meta{}, fmt.Errorf("%w: header cut at %d bytes", errCorrupt, len(buf))
	}
	if got, want := headerSum(buf, h.metaLen), binary.LittleEndian.Uint64(buf[40:]); got != want {
		return h, Meta{}, fmt.Errorf("%w: header checksum %016x, want %016x", errCorrupt, got, want)
	}
	m, err := decodeMeta(buf[fixedHeaderLen:fixedHeaderLen+h.metaLen], h.version)
	if err != nil {
		return h, Meta{}, err
	}
	m.Size = h.size
	return h, m, nil
}

// appendMeta appends the encoding of every field of m but Size to b, as
// diskVersion lays it out: strings and lists are length-prefixed (uvarint),
// numbers are varints, times are Unix seconds and nanoseconds; OriginTime
// comes last, so that a version 1 meta is this encoding cut before it.
func appendMeta(b []byte, m *Meta) []byte {
	b = appendString(b, m.Key)
	b = appendString(b, m.URL)
	b = binary.AppendVarint(b, int64(m.Status))
	b = binary.AppendUvarint(b, uint64(len(m.Header)))
	for k, vs := range m.Header {
		b = appendString(b, k)
		b = appendStrings(b, vs)
	}
	b = appendTime(b, m.RequestTime)
	b = appendTime(b, m.ResponseTime)
	for _, d := range [...]time.Duration{m.InitialAge, m.Lifetime, m.StaleWhileRevalidate, m.StaleIfError} {
		b = binary.AppendVarint(b, int64(d))
	}
	b = binary.AppendUvarint(b, uint64(m.Flags))
	b = appendStrings(b, m.Tags)
	b = appendStrings(b, m.Vary)
	b = appendStrings(b, m.Variants)
	b = appendTime(b, m.OriginTime)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendStrings(b []byte, ss []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decodeMeta decodes what appendMeta encoded for a file of the given
// version. Empty lists and headers decode as nil, times in UTC; a version 1
// meta has no OriginTime, which stays zero.
func decodeMeta(b []byte, version uint16) (Meta, error) {
	d := metaDecoder{s: string(b)}
	var m Meta
	m.Key = d.str()
	m.URL = d.str()
	m.Status = int(d.varint())
	if n := d.count(2); n > 0 {
		m.Header = make(http.Header, n)
		for range n {
			k := d.str()
			m.Header[k] = d.strs()
		}
	}
	m.RequestTime = d.time()
	m.ResponseTime = d.time()
	for _, p := range [...]*time.Duration{&m.InitialAge, &m.Lifetime, &m.StaleWhileRevalidate, &m.StaleIfError} {
		*p = time.Duration(d.varint())
	}
	m.Flags = uint32(d.uvarint())
	m.Tags = d.strs()
	m.Vary = d.strs()
	m.Variants = d.strs()
	if version >= diskVersion {
		m.OriginTime = d.time()
	}
	if d.err == nil && d.off != len(d.s) {
		d.err = fmt.Errorf("%w: %d bytes after the meta", errCorrupt, len(d.s)-d.off)
	}
	return m, d.err
}

// metaDecoder reads from s, a string holding the whole encoded meta, so the
// decoded strings share its memory. After the first error every read
// returns a zero value and err keeps that error.
type metaDecoder struct {
	s   string
	off int
	err error
}

func (d *metaDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: meta: bad %s at byte %d", errCorrupt, what, d.off)
	}
}

func (d *metaDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	// binary.Uvarint over a string, which it does not take.
	var v uint64
	for i := 0; i < binary.MaxVarintLen64 && d.off+i < len(d.s); i++ {
		c := d.s[d.off+i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			break // overflows 64 bits
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			d.off += i + 1
			return v
		}
	}
	d.fail("number")
	return 0
}

func (d *metaDecoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint
}

// count reads a list length, refusing lengths the remaining bytes cannot
// hold at minSize bytes per element.
func (d *metaDecoder) count(minSize int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64((len(d.s)-d.off)/minSize) {
		d.fail("list length")
		return 0
	}
	return int(n)
}

func (d *metaDecoder) str() string {
	n := d.count(1)
	if d.err != nil {
		return ""
	}
	s := d.s[d.off : d.off+n]
	d.off += n
	return s
}

func (d *metaDecoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}

func (d *metaDecoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail("time")
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
