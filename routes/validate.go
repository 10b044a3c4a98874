package routes

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of the route model.
const (
	// MinIDLen and MaxIDLen bound a deployment ID, which is lowercase hex.
	// ECE's cluster IDs are 32 hex digits (128 bits); shorter IDs are
	// accepted for tests and small fleets, but not so short that a typed
	// word ("cafe", "beef") passes for one.
	MinIDLen = 8
	MaxIDLen = 32

	// MaxInstanceIDLen bounds an instance ID, which is made of
	// A-Z a-z 0-9 . _ - (it is sent back in X-Found-Handling-Instance).
	MaxInstanceIDLen = 64

	// MaxWeight is the largest weight of a generation in serving.
	MaxWeight = 1_000_000

	// MaxDisplayNameLen bounds a display name, in characters.
	MaxDisplayNameLen = 64
)

// ValidateDeployment checks one deployment on its own, not against the other
// deployments of a table (duplicate IDs and alias keys are found by
// NewTable). It returns nil or an *Error wrapping ErrInvalid whose message
// names the deployment and instance, e.g.
//
//	deployment 7f3a9c2e51d04b8e: instance i-0002: addr "foo" is not host:port
//
// The rules:
//   - id: MinIDLen to MaxIDLen lowercase hex digits;
//   - kind: a lowercase DNS label (es, kb, apm, fleet, ...);
//   - display_name: empty, or up to MaxDisplayNameLen printable characters
//     of valid UTF-8 (no control, format or separator characters other
//     than the ASCII space);
//   - aliases: lowercase DNS labels, each listed once;
//   - allow: IP addresses or CIDR prefixes (no host bits set), each
//     listed once;
//   - serving: at least one generation; generation names are lowercase DNS
//     labels; weights are 0 to MaxWeight and sum to more than 0;
//   - instances: at least one; each has an id (1 to MaxInstanceIDLen of
//     A-Z a-z 0-9 . _ -) unique within the deployment, an addr host:port
//     with port 1-65535, a zone (a lowercase DNS label), and a generation
//     that is in serving (its weight may be 0).
func ValidateDeployment(d *DeploymentSpec) error {
	if err := validateDeployment(d); err != nil {
		return err
	}
	return nil
}

func validateDeployment(d *DeploymentSpec) *Error {
	if d == nil {
		return invalidf(Ref{}, "deployment is null")
	}
	at := Ref{Deployment: d, Field: "id"}
	switch {
	case d.ID == "":
		return invalidf(at, "deployment id is required")
	case !IsDeploymentID(d.ID):
		return invalidf(at, "deployment id %q is not %d to %d lowercase hex digits", d.ID, MinIDLen, MaxIDLen)
	}
	p := prefix{d: d} // for messages: built only for one

	at.Field = "kind"
	switch {
	case d.Kind == "":
		return invalidf(at, "%skind is required", p)
	case !isLabel(d.Kind):
		return invalidf(at, "%skind %q is not a lowercase DNS label", p, d.Kind)
	}

	if err := validateDisplayName(d, p); err != nil {
		return err
	}

	for i, a := range d.Aliases {
		at := Ref{Deployment: d, Field: "aliases", Index: i}
		if !isLabel(a) {
			return invalidf(at, "%salias %q is not a lowercase DNS label", p, a)
		}
		for _, b := range d.Aliases[:i] {
			if a == b {
				return invalidf(at, "%salias %q is listed twice", p, a)
			}
		}
	}

	for i, a := range d.Allow {
		at := Ref{Deployment: d, Field: "allow", Index: i}
		if _, err := ParseAllow(a); err != nil {
			return invalidf(at, "%sallow: %v", p, err)
		}
		for _, b := range d.Allow[:i] {
			if a == b {
				return invalidf(at, "%sallow: %q is listed twice", p, a)
			}
		}
	}

	if err := validateServing(d, p); err != nil {
		return err
	}

	if len(d.Instances) == 0 {
		return invalidf(Ref{Deployment: d, Field: "instances"}, "%sno instances", p)
	}
	for i, in := range d.Instances {
		if err := validateInstance(d, i, in, p); err != nil {
			return err
		}
	}
	return nil
}

// prefix starts a message about a deployment, or one of its instances:
// "deployment <id>: " or "deployment <id>: instance <id>: ". It is built
// only when a message is.
type prefix struct {
	d  *DeploymentSpec
	in *Instance
}

func (p prefix) String() string {
	s := "deployment " + p.d.ID + ": "
	if p.in != nil {
		s += "instance " + p.in.ID + ": "
	}
	return s
}

func validateDisplayName(d *DeploymentSpec, p prefix) *Error {
	at := Ref{Deployment: d, Field: "display_name"}
	name := d.DisplayName
	if !utf8.ValidString(name) {
		return invalidf(at, "%sdisplay_name is not valid UTF-8", p)
	}
	if n := utf8.RuneCountInString(name); n > MaxDisplayNameLen {
		return invalidf(at, "%sdisplay_name has %d characters; at most %d", p, n, MaxDisplayNameLen)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return invalidf(at, "%sdisplay_name %q: %U is not a printable character", p, name, r)
		}
	}
	return nil
}

func validateServing(d *DeploymentSpec, p prefix) *Error {
	switch {
	case d.Serving == nil:
		return invalidf(Ref{Deployment: d, Field: "serving"}, "%sserving is required", p)
	case len(d.Serving) == 0:
		return invalidf(Ref{Deployment: d, Field: "serving"}, "%sserving is empty", p)
	}
	var few [8]string // most deployments serve a generation or two
	gens := few[:0]
	for g := range d.Serving {
		gens = append(gens, g)
	}
	slices.Sort(gens) // the first error must not depend on map order
	sum := 0
	for _, g := range gens {
		at := Ref{Deployment: d, Field: "serving", Key: g}
		w := d.Serving[g]
		if !isLabel(g) {
			return invalidf(at, "%sserving: generation %q is not a lowercase DNS label", p, g)
		}
		if w < 0 || w > MaxWeight {
			return invalidf(at, "%sserving: %s: weight %d is out of range 0-%d", p, g, w, MaxWeight)
		}
		sum += w
	}
	if sum == 0 {
		return invalidf(Ref{Deployment: d, Field: "serving"}, "%sserving: weights sum to 0", p)
	}
	return nil
}

func validateInstance(d *DeploymentSpec, i int, in *Instance, p prefix) *Error {
	if in == nil {
		return invalidf(Ref{Deployment: d, Field: "instances"}, "%sinstance %d is null", p, i+1)
	}
	at := Ref{Deployment: d, Instance: in, Field: "id"}
	switch {
	case in.ID == "":
		return invalidf(at, "%sinstance id is required", p)
	case len(in.ID) > MaxInstanceIDLen:
		return invalidf(at, "%sinstance id %q is longer than %d", p, in.ID, MaxInstanceIDLen)
	case !isInstanceID(in.ID):
		return invalidf(at, "%sinstance id %q has a character other than A-Z a-z 0-9 . _ -", p, in.ID)
	}
	for _, other := range d.Instances[:i] {
		if other != nil && other.ID == in.ID {
			return invalidf(at, "%sinstance %s is listed twice", p, in.ID)
		}
	}
	p.in = in

	at.Field = "addr"
	if in.Addr == "" {
		return invalidf(at, "%saddr is required", p)
	}
	if msg := checkAddr(in.Addr); msg != "" {
		return invalidf(at, "%s%s", p, msg)
	}

	at.Field = "zone"
	switch {
	case in.Zone == "":
		return invalidf(at, "%szone is required", p)
	case !isLabel(in.Zone):
		return invalidf(at, "%szone %q is not a lowercase DNS label", p, in.Zone)
	}

	at.Field = "generation"
	if in.Generation == "" {
		return invalidf(at, "%sgeneration is required", p)
	}
	if _, ok := d.Serving[in.Generation]; !ok {
		return invalidf(at, "%sgeneration %q is not in serving", p, in.Generation)
	}
	return nil
}

// validateDomain checks a table's domain, already lowercased.
func validateDomain(domain string) *Error {
	at := Ref{Field: "domain"}
	if domain == "" {
		return invalidf(at, "domain is required")
	}
	if !isDNSName(domain, false) {
		return invalidf(at, "domain %q is not a valid DNS name", domain)
	}
	return nil
}

// validateZones checks the zone names and states of a table.
func validateZones(zones map[string]ZoneState) *Error {
	names := make([]string, 0, len(zones))
	for z := range zones {
		names = append(names, z)
	}
	sort.Strings(names)
	for _, z := range names {
		at := Ref{Field: "zones", Key: z}
		if !isLabel(z) {
			return invalidf(at, "zone %q is not a lowercase DNS label", z)
		}
		if s := zones[z]; s != ZoneUp && s != ZoneDown {
			return invalidf(at, "zone %s: state %d is not up or down", z, s)
		}
	}
	return nil
}

// checkAddr returns what is wrong with a host:port, or "".
func checkAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || !isHost(host) {
		return "addr " + strconv.Quote(addr) + " is not host:port"
	}
	n := 0
	for _, c := range []byte(port) {
		if c < '0' || c > '9' || n > 65535 {
			n = -1
			break
		}
		n = n*10 + int(c-'0')
	}
	if n < 1 || n > 65535 {
		return "addr " + strconv.Quote(addr) + ": port must be 1-65535"
	}
	return ""
}

// isHost reports whether h is an IP address or a host name.
func isHost(h string) bool {
	if h == "" {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return isDNSName(h, true)
}

// isDNSName reports whether s is a dot-separated name of DNS labels, at most
// 253 bytes. loose admits upper case and '_' (host names in the wild).
func isDNSName(s string, loose bool) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !isLabelOf(label, loose) {
			return false
		}
	}
	return true
}

// isLabel reports whether s is a lowercase DNS label: 1 to 63 of a-z 0-9 -,
// not starting or ending with '-'.
func isLabel(s string) bool { return isLabelOf(s, false) }

func isLabelOf(s string, loose bool) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case loose && ('A' <= c && c <= 'Z' || c == '_'):
		default:
			return false
		}
	}
	return true
}

// IsDeploymentID reports whether s is a valid deployment ID: MinIDLen to
// MaxIDLen lowercase hex digits.
func IsDeploymentID(s string) bool {
	if len(s) < MinIDLen || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isInstanceID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return s != ""
}

// ParseAllow parses one entry of a traffic filter: an IP address (a
// prefix of one address) or a CIDR prefix written with no host bits set.
// The error says what is wrong with s and does not repeat it in full
// when it is long.
func ParseAllow(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", clip(s))
		}
		if a.Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address; write it as %s", s, a.Unmap())
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", clip(s))
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix; write the IPv4 prefix", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the prefix is %s", s, m)
	}
	return p, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
