package edge

import (
	"strconv"
	"strings"
)

// sfValue is the bare item of a Structured Field dictionary member
// (RFC 9651 §3.3); parameters are parsed and dropped.
type sfValue struct {
	kind byte // 'i' integer, 'd' decimal, 's' string, 't' token, 'b' byte sequence, '?' boolean, 'l' inner list
	num  int64
	str  string
	bool bool
}

// parseSFDictionary parses a Structured Field Dictionary (RFC 9651 §4.2.2)
// from the field's lines joined as one list. ok is false when the value is
// not a valid Dictionary; a duplicate key keeps the last value (§3.2).
func parseSFDictionary(lines []string) (dict map[string]sfValue, ok bool) {
	s := strings.Join(lines, ",")
	p := sfParser{s: s}
	p.skipSP()
	dict = map[string]sfValue{}
	for !p.done() {
		key, ok := p.key()
		if !ok {
			return nil, false
		}
		v := sfValue{kind: '?', bool: true}
		if p.peek() == '=' {
			p.i++
			if v, ok = p.memberValue(); !ok {
				return nil, false
			}
		} else if !p.params() {
			return nil, false
		}
		dict[key] = v
		p.skipOWS()
		if p.done() {
			return dict, true
		}
		if p.peek() != ',' {
			return nil, false
		}
		p.i++
		p.skipOWS()
		if p.done() {
			return nil, false // trailing comma
		}
	}
	return dict, true
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }
func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}
func (p *sfParser) skipSP() {
	for !p.done() && p.s[p.i] == ' ' {
		p.i++
	}
}
func (p *sfParser) skipOWS() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// key: ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !(c >= 'a' && c <= 'z' || c == '*') {
		return "", false
	}
	p.i++
	for !p.done() {
		c := p.s[p.i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i], true
}

func (p *sfParser) memberValue() (sfValue, bool) {
	if p.peek() == '(' {
		p.i++
		for {
			p.skipSP()
			if p.peek() == ')' {
				p.i++
				return sfValue{kind: 'l'}, p.params()
			}
			if _, ok := p.bareItem(); !ok || !p.params() {
				return sfValue{}, false
			}
			if c := p.peek(); c != ' ' && c != ')' {
				return sfValue{}, false
			}
		}
	}
	v, ok := p.bareItem()
	return v, ok && p.params()
}

// params: *( ";" *SP key [ "=" bare-item ] )
func (p *sfParser) params() bool {
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			if _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

func (p *sfParser) bareItem() (sfValue, bool) {
	c := p.peek()
	switch {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		start := p.i
		p.i++
		for !p.done() && (isTchar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return sfValue{kind: 't', str: p.s[start:p.i]}, true
	case c == ':':
		end := strings.IndexByte(p.s[p.i+1:], ':')
		if end < 0 {
			return sfValue{}, false
		}
		for _, b := range []byte(p.s[p.i+1 : p.i+1+end]) {
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '+' || b == '/' || b == '=') {
				return sfValue{}, false
			}
		}
		p.i += end + 2
		return sfValue{kind: 'b'}, true
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			v := sfValue{kind: '?', bool: p.s[p.i+1] == '1'}
			p.i += 2
			return v, true
		}
	}
	return sfValue{}, false
}

// number: an Integer (at most 15 digits) or a Decimal (12.3 digits).
func (p *sfParser) number() (sfValue, bool) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	digits, dot, frac := 0, false, 0
	for !p.done() {
		c := p.s[p.i]
		switch {
		case c >= '0' && c <= '9':
			if dot {
				frac++
			} else {
				digits++
			}
		case c == '.' && !dot && digits > 0:
			dot = true
		default:
			goto end
		}
		p.i++
	}
end:
	if digits == 0 {
		return sfValue{}, false
	}
	if !dot {
		if digits > 15 {
			return sfValue{}, false
		}
		n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
		return sfValue{kind: 'i', num: n}, err == nil
	}
	if digits > 12 || frac == 0 || frac > 3 {
		return sfValue{}, false
	}
	return sfValue{kind: 'd'}, true
}

func (p *sfParser) str() (sfValue, bool) {
	var b strings.Builder
	for p.i++; !p.done(); p.i++ {
		c := p.s[p.i]
		switch {
		case c == '\\':
			p.i++
			if p.done() || (p.s[p.i] != '"' && p.s[p.i] != '\\') {
				return sfValue{}, false
			}
			b.WriteByte(p.s[p.i])
		case c == '"':
			p.i++
			return sfValue{kind: 's', str: b.String()}, true
		case c < 0x20 || c > 0x7e:
			return sfValue{}, false
		default:
			b.WriteByte(c)
		}
	}
	return sfValue{}, false
}

func isTchar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseCDNCacheControl reads CDN-Cache-Control (RFC 9213 §2.1): a
// Structured Field Dictionary whose members are the Cache-Control response
// directives. A field that does not parse is ignored entirely (ok false);
// a directive whose value has the wrong type is ignored alone.
func parseCDNCacheControl(lines []string) (directives, bool) {
	dict, ok := parseSFDictionary(lines)
	if !ok {
		return directives{}, false
	}
	d := newDirectives()
	for k, v := range dict {
		i := directive(k)
		if i < 0 || directiveTable[i].request {
			continue
		}
		switch kind := directiveTable[i].kind; {
		case kind == kindDelta:
			if v.kind == 'i' && v.num >= 0 {
				*d.delta(i) = min(v.num, deltaMax)
			}
		case kind == kindFields && v.kind == 's':
			*d.names(i) = appendFieldNames(*d.names(i), v.str)
		case v.kind == '?' && v.bool:
			*d.flag(i) = true
		}
	}
	return d, true
}
