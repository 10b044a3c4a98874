package accesslog

import (
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// appendEntry appends e to dst as one JSON object and a newline, in the
// format documented on Logger.Log. It does not allocate when dst has room.
func appendEntry(dst []byte, e *Entry) []byte {
	dst = append(dst, `{"@timestamp":"`...)
	dst = appendTimestamp(dst, e.Time)
	dst = append(dst, `","request_id":`...)
	dst = appendJSONBytes(dst, e.RequestID)
	dst = append(dst, `,"client_ip":`...)
	dst = appendJSONBytes(dst, e.ClientIP)
	dst = append(dst, `,"method":`...)
	dst = appendJSONBytes(dst, e.Method)
	dst = append(dst, `,"host":`...)
	dst = appendJSONBytes(dst, e.Host)
	dst = append(dst, `,"path":`...)
	dst = appendJSONBytes(dst, e.Path)
	dst = append(dst, `,"handling_cluster":`...)
	dst = appendJSONString(dst, e.HandlingCluster)
	dst = append(dst, `,"handling_instance":`...)
	dst = appendJSONString(dst, e.HandlingInstance)
	dst = append(dst, `,"availability_zones":[`...)
	if e.AvailabilityZones != "" {
		dst = appendJSONString(dst, e.AvailabilityZones)
	}
	dst = append(dst, `],"status_code":`...)
	dst = strconv.AppendInt(dst, int64(e.StatusCode), 10)
	if e.StatusReason != "" {
		dst = append(dst, `,"status_reason":`...)
		dst = appendJSONString(dst, e.StatusReason)
	}
	dst = append(dst, `,"response_time":`...)
	dst = appendMillis(dst, e.ResponseTime)
	if e.BackendResponseTime >= 0 {
		dst = append(dst, `,"backend_response_time":`...)
		dst = appendMillis(dst, e.BackendResponseTime)
	}
	dst = append(dst, `,"bytes_in":`...)
	dst = strconv.AppendInt(dst, e.BytesIn, 10)
	dst = append(dst, `,"bytes_out":`...)
	dst = strconv.AppendInt(dst, e.BytesOut, 10)
	if e.Protocol != "" {
		dst = append(dst, `,"protocol":`...)
		dst = appendJSONString(dst, e.Protocol)
	}
	if e.TLSVersion != "" {
		dst = append(dst, `,"tls_version":`...)
		dst = appendJSONString(dst, e.TLSVersion)
		dst = append(dst, `,"tls_resumed":`...)
		dst = strconv.AppendBool(dst, e.TLSResumed)
	}
	return append(dst, "}\n"...)
}

// appendJSONBytes is appendJSONString for a byte slice, without copying it.
func appendJSONBytes(dst, b []byte) []byte {
	// b is only read, and the string does not outlive this call.
	return appendJSONString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
}

// appendJSONString appends s as a quoted JSON string. Quotes and
// backslashes are escaped, control bytes become \u00XX, and every byte that
// is not part of valid UTF-8 becomes \ufffd (as encoding/json does), so the
// output is always valid JSON and valid UTF-8 on a single line.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if c == '"' || c == '\\' {
				dst = append(dst, '\\', c)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendTimestamp appends t in UTC as RFC 3339 with milliseconds,
// e.g. 2024-05-01T12:34:56.789Z.
func appendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
	}
	hour, minute, sec := t.Clock()
	dst = appendPadded(dst, year, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendPadded(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, sec, 2)
	dst = append(dst, '.')
	dst = appendPadded(dst, t.Nanosecond()/1e6, 3)
	return append(dst, 'Z')
}

// appendPadded appends v (0 <= v < 10^width, width <= 4) zero-padded.
func appendPadded(dst []byte, v, width int) []byte {
	var buf [4]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// appendMillis appends d in milliseconds with three decimals (d rounded to
// the microsecond), e.g. 12.345.
func appendMillis(dst []byte, d time.Duration) []byte {
	us := int64(d.Round(time.Microsecond) / time.Microsecond)
	var u uint64
	if us < 0 {
		dst = append(dst, '-')
		u = uint64(-us) // also right for the most negative value
	} else {
		u = uint64(us)
	}
	dst = strconv.AppendUint(dst, u/1000, 10)
	dst = append(dst, '.')
	return appendPadded(dst, int(u%1000), 3)
}
