package zkstore

import "errors"

// Sentinel errors; the errors of this package wrap them (or a ZooKeeper
// client error, or a *routes.Error for refused input).
var (
	// ErrBadRoot: the root path is not an absolute clean path.
	ErrBadRoot = errors.New("zkstore: bad root path")
	// ErrBadName: a zone or registration name cannot be a znode name.
	ErrBadName = errors.New("zkstore: bad znode name")
	// ErrNoRoot: the root znode or its deployments container is missing.
	ErrNoRoot = errors.New("zkstore: no routing table at root")
	// ErrNotFound: no such deployment in the store.
	ErrNotFound = errors.New("zkstore: no such deployment")
	// ErrNoInstance: no such instance in the deployment.
	ErrNoInstance = errors.New("zkstore: no such instance")
	// ErrConflict: another writer changed a deployment between our read
	// and our transaction, which was therefore not applied.
	ErrConflict = errors.New("zkstore: concurrent change")
	// ErrInvalid: a znode's content is not valid (bad JSON, a missing or
	// bad field).
	ErrInvalid = errors.New("zkstore: invalid znode")
	// ErrUnavailable: no ZooKeeper session within the connect timeout.
	ErrUnavailable = errors.New("zkstore: ZooKeeper unavailable")
)
