package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad allocator flags and kinds files exit 2 with one line naming what
// is wrong.
func TestAllocatorUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badKinds := filepath.Join(dir, "kinds.yaml")
	if err := os.WriteFile(badKinds, []byte("es:\n  command: [x]\n  helth_path: /h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyCmd := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(emptyCmd, []byte("es:\n  health_path: /h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"allocator", "--zk", "127.0.0.1:1", "--id", "a", "--zone", "z", "--capacity", "1GiB", "--instances-dir", dir}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"allocator", "--id", "a"}, "switchyard allocator: --zk is required"},
		{[]string{"allocator", "--zk", "127.0.0.1:1", "--zone", "z", "--capacity", "1GiB"}, "switchyard allocator: --id is required"},
		{append(base[:len(base):len(base)], "--port-range", "30000-20000"), `switchyard allocator: --port-range: invalid port range "30000-20000" (want FIRST-LAST within 1-65535)`},
		{append(base[:len(base):len(base)], "--capacity", "lots"), `switchyard allocator: --capacity: invalid size "lots" (want bytes, e.g. 16384 or 16KiB)`},
		{append(base[:len(base):len(base)], "--capacity", "1MiB"), "switchyard allocator: --capacity 1048576: want at least 16MiB"},
		{append(base[:len(base):len(base)], "--id", "../x"), `switchyard allocator: registry: invalid: --id "../x": want 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit`},
		{append(base[:len(base):len(base)], "--kinds-file", badKinds), "field helth_path not found"},
		{append(base[:len(base):len(base)], "--kinds-file", emptyCmd), `kind "es": command is empty`},
		{append(base[:len(base):len(base)], "--attribute", "rack"), `switchyard allocator: --attribute: invalid attribute "rack" (want key=value)`},
	} {
		var out, errOut bytes.Buffer
		code := Main(c.args, &out, &errOut)
		lines := strings.Count(errOut.String(), "\n")
		if code != 2 || lines != 1 || !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line with %q", c.args[1:], code, errOut.String(), c.want)
		}
	}
}
