package zk

// opAddWatch is ZooKeeper's addWatch (3.6 and later): a watch that stays
// set after it fires.
const opAddWatch = 106

// AddWatchMode is the kind of watch AddWatch sets.
type AddWatchMode int32

const (
	// AddWatchModePersistent fires, and stays set, for every change of
	// the znode's data and children, as a data and a child watch would.
	AddWatchModePersistent AddWatchMode = 0
	// AddWatchModePersistentRecursive fires, and stays set, for the
	// creation, data change and deletion of the znode and of every znode
	// under it (no children events: creations and deletions say it).
	AddWatchModePersistentRecursive AddWatchMode = 1
)

type addWatchRequest struct {
	Path string
	Mode int32
}

// addWatchResponse is the server's reply, an error response (whose code
// the reply header also carries).
type addWatchResponse struct {
	Err int32
}

// AddWatch sets a persistent watch on path (ZooKeeper 3.6 and later; an
// older server answers ErrUnimplemented). The path need not exist. Its
// events reach the connection's event callback or channel only (there is
// no per-watch channel): each says what happened and where, and the watch
// stays set until the session or the connection ends. Unlike the one-shot
// watches, it is not set again after a reconnection: the server drops it
// with the connection, so call AddWatch again on each new connection (and
// read again whatever may have changed while none was set).
func (c *Conn) AddWatch(path string, mode AddWatchMode) error {
	if err := validatePath(path, false); err != nil {
		return err
	}
	_, err := c.request(opAddWatch, &addWatchRequest{Path: path, Mode: int32(mode)}, &addWatchResponse{}, nil)
	return err
}
