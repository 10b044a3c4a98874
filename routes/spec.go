package routes

// DeploymentSpec is what an operator says of a deployment: the one
// definition that the routes file, the route stream, the proxy's snapshot
// on disk and the ZooKeeper layout all carry. ValidateDeployment holds its
// rules; NewTable compiles specs into the Deployments of a Table.
//
// Its encodings are its tags, read by every codec, so that a new field
// needs only its definition here, its rules in ValidateDeployment and the
// code that uses it:
//   - yaml: the key in the routes file. The fields' order is the order of
//     the keys in the routes file's messages, and the order their values
//     are read and checked in. The item tag of a list or a mapping names
//     one of its elements in messages.
//   - json: the key on the route stream and in its snapshots (routes/wire),
//     and in the deployment and instance znodes (routes/zkstore), which
//     leave out what the layout keeps elsewhere (the IDs are znode names,
//     the instances child znodes).
//
// A new optional field is omitted when empty, so that the encodings of the
// deployments that do not use it, and the table hashes over them, stay as
// they were.
type DeploymentSpec struct {
	ID   string `json:"id" yaml:"id"`
	Kind string `json:"kind" yaml:"kind"` // kind code: es, kb, apm, fleet, ...
	// DisplayName is what people call the deployment, shown beside its
	// ID; it plays no part in routing. Empty: none.
	DisplayName string   `json:"display_name,omitempty" yaml:"display_name,omitempty"`
	Aliases     []string `json:"aliases,omitempty" yaml:"aliases,omitempty" item:"alias"` // reachable as "<alias>.<kind>"
	// Allow is the deployment's traffic filter: the client addresses
	// (each an IP address or a CIDR prefix) that may reach it. Empty:
	// every address may. A client outside it gets 403.
	Allow     []string       `json:"allow,omitempty" yaml:"allow,omitempty" item:"allow entry"`
	Serving   map[string]int `json:"serving" yaml:"serving" item:"generation"` // generation -> weight
	Instances []*Instance    `json:"instances" yaml:"instances" item:"instance"`
}

// Instance is one running copy of a deployment. It has nothing computed:
// the Deployments of a Table point at the instances of their specs, so an
// instance is the same pointer in every table built from the same spec.
// Never modify one that a spec or a table holds.
type Instance struct {
	ID          string `json:"id" yaml:"id"`
	Addr        string `json:"addr" yaml:"addr"` // host:port
	Zone        string `json:"zone" yaml:"zone"`
	Generation  string `json:"generation" yaml:"generation"`
	Maintenance bool   `json:"maintenance,omitempty" yaml:"maintenance,omitempty"`
}
