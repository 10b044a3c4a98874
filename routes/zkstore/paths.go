package zkstore

import (
	"fmt"
	"path"
	"strings"
)

// DefaultRoot is the root znode of the layout when none is configured.
const DefaultRoot = "/switchyard"

// Names of the fixed znodes under the root.
const (
	configNode       = "config"
	zonesNode        = "zones"
	deploymentsNode  = "deployments"
	instancesNode    = "instances"
	routeServersNode = "routeservers"
	aliasesNode      = "aliases"
)

// layout names the znodes under one root.
type layout struct{ root string }

func (l layout) config() string                { return l.root + "/" + configNode }
func (l layout) zones() string                 { return l.root + "/" + zonesNode }
func (l layout) zone(z string) string          { return l.zones() + "/" + z }
func (l layout) deployments() string           { return l.root + "/" + deploymentsNode }
func (l layout) deployment(id string) string   { return l.deployments() + "/" + id }
func (l layout) instances(id string) string    { return l.deployment(id) + "/" + instancesNode }
func (l layout) instance(id, in string) string { return l.instances(id) + "/" + in }
func (l layout) routeServers() string          { return l.root + "/" + routeServersNode }
func (l layout) routeServer(n string) string   { return l.routeServers() + "/" + n }
func (l layout) aliases() string               { return l.root + "/" + aliasesNode }
func (l layout) alias(key string) string       { return l.aliases() + "/" + key }

// CheckRoot checks a root path: absolute, clean, not "/".
func CheckRoot(root string) error {
	switch {
	case !strings.HasPrefix(root, "/"):
		return fmt.Errorf("%w: root %q is not an absolute path", ErrBadRoot, root)
	case root == "/":
		return fmt.Errorf("%w: root must not be /", ErrBadRoot)
	case path.Clean(root) != root:
		return fmt.Errorf("%w: root %q is not a clean path (want %q)", ErrBadRoot, root, path.Clean(root))
	}
	return nil
}

// checkName checks a znode name given by a caller (zone, registration).
func checkName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: %s %q is not a znode name", ErrBadName, what, name)
	}
	return nil
}
