package edge

import (
	"net/http"
	"time"
)

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) strictly: the
// preferred IMF-fixdate, and the obsolete RFC 850 and asctime forms a
// recipient must accept. Unlike http.ParseTime it rejects what the grammar
// does not allow (one-digit hours, doubled spaces, zones other than GMT),
// because an invalid Expires must mean "already expired" (RFC 9111 §5.3),
// not a date guessed from it.
func parseHTTPDate(s string) (time.Time, bool) {
	var layout string
	switch {
	case len(s) == len("Sun, 06 Nov 1994 08:49:37 GMT") && s[3] == ',':
		layout = http.TimeFormat
	case len(s) == len("Sun Nov  6 08:49:37 1994") && s[3] == ' ':
		layout = time.ANSIC
	case len(s) >= len("Sunday, 06-Nov-94 08:49:37 GMT") && len(s) <= len("Wednesday, 06-Nov-94 08:49:37 GMT"):
		layout = time.RFC850
	default:
		return time.Time{}, false
	}
	if !httpDateShape(s, layout) {
		return time.Time{}, false
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return time.Time{}, false
	}
	if layout == time.RFC850 {
		// A two-digit year more than 50 years in the future is in the
		// past century (RFC 9110 §5.6.7); time.Parse maps 69-99 to 19xx
		// and 00-68 to 20xx, close enough but made exact here.
		if t.After(time.Now().AddDate(50, 0, 0)) {
			t = t.AddDate(-100, 0, 0)
		}
	}
	return t.UTC(), true
}

// httpDateShape checks the fixed-width fields time.Parse is lenient about:
// two-digit hour, minute and second, single spaces, and the GMT zone.
func httpDateShape(s, layout string) bool {
	digits := func(i, n int) bool {
		for j := i; j < i+n; j++ {
			if j >= len(s) || s[j] < '0' || s[j] > '9' {
				return false
			}
		}
		return true
	}
	switch layout {
	case http.TimeFormat: // Sun, 06 Nov 1994 08:49:37 GMT
		return s[4] == ' ' && digits(5, 2) && s[7] == ' ' && s[11] == ' ' && digits(12, 4) &&
			s[16] == ' ' && digits(17, 2) && s[19] == ':' && digits(20, 2) && s[22] == ':' &&
			digits(23, 2) && s[25:] == " GMT"
	case time.ANSIC: // Sun Nov  6 08:49:37 1994
		return s[7] == ' ' && (s[8] == ' ' || digits(8, 1)) && digits(9, 1) && s[10] == ' ' &&
			digits(11, 2) && s[13] == ':' && digits(14, 2) && s[16] == ':' && digits(17, 2) &&
			s[19] == ' ' && digits(20, 4)
	default: // Sunday, 06-Nov-94 08:49:37 GMT
		i := len(s) - len("06-Nov-94 08:49:37 GMT")
		return s[i-2] == ',' && s[i-1] == ' ' && digits(i, 2) && s[i+2] == '-' && s[i+6] == '-' &&
			digits(i+7, 2) && s[i+9] == ' ' && digits(i+10, 2) && s[i+12] == ':' && digits(i+13, 2) &&
			s[i+15] == ':' && digits(i+16, 2) && s[i+18:] == " GMT"
	}
}
