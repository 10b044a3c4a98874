package allocator

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroups gives each instance a cgroup of its own: a memory limit of the
// instance's size and a CPU weight in proportion to it. Two hierarchies
// are known: cgroup v1 with the memory and cpu controllers mounted
// separately (memory.limit_in_bytes, cpu.shares), and cgroup v2 with both
// controllers available (memory.max, cpu.weight). The instances' groups
// sit under a parent per allocator, itself under the allocator's own
// group, so that what an allocator's instances use is inside whatever
// limit the allocator runs in.
type cgroups struct {
	version int // 1 or 2
	// v1: the groups' parent in the memory and the cpu hierarchies; v2:
	// the parent in the unified hierarchy (memDir), cpuDir unused.
	memDir, cpuDir string
}

// Files a cgroup's settings and counters are read from; named in status
// and tests.
const (
	v1MemLimit = "memory.limit_in_bytes"
	v1Shares   = "cpu.shares"
	v1OOM      = "memory.oom_control"
	v2MemMax   = "memory.max"
	v2Weight   = "cpu.weight"
	v2Events   = "memory.events"
)

// cpuWeight is the CPU weight of an instance of mem bytes: in proportion
// to its memory (one step of v1's shares per 16 MiB, of v2's weight per
// 128 MiB), within each version's range.
func cpuWeight(version int, mem int64) int64 {
	if version == 1 {
		return min(max(mem>>24, 2), 262144) // cpu.shares: 2..262144; 16 GiB = 1024
	}
	return min(max(mem>>27, 1), 10000) // cpu.weight: 1..10000; 16 GiB = 128
}

// findCgroups finds the hierarchy the allocator can confine instances in
// and makes the parent group named name under the allocator's own group.
// The error says why there is none (not root, no controllers).
func findCgroups(fsRoot, name string) (*cgroups, error) {
	own, err := ownCgroups("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	mem, cpu := filepath.Join(fsRoot, "memory"), filepath.Join(fsRoot, "cpu")
	if isDir(mem) && isDir(cpu) && own["memory"] != "" {
		cg := &cgroups{version: 1,
			memDir: filepath.Join(mem, own["memory"], name),
			cpuDir: filepath.Join(cpu, own["cpu"], name)}
		if err := cg.makeParents(); err != nil {
			return nil, err
		}
		return cg, nil
	}
	for _, unified := range []string{fsRoot, filepath.Join(fsRoot, "unified")} {
		ctrl, err := os.ReadFile(filepath.Join(unified, "cgroup.controllers"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(ctrl))
		if !contains(f, "memory") || !contains(f, "cpu") {
			continue
		}
		cg := &cgroups{version: 2, memDir: filepath.Join(unified, own[""], name)}
		if err := cg.makeParents(); err != nil {
			return nil, err
		}
		return cg, nil
	}
	return nil, errors.New("no cgroup hierarchy with the memory and cpu controllers")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// ownCgroups reads /proc/self/cgroup: controller → path ("" for v2).
func ownCgroups(file string) (map[string]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, sc.Err()
}

// makeParents creates the parent groups; in v2, with the memory and cpu
// controllers enabled for their children all the way down.
func (cg *cgroups) makeParents() error {
	if cg.version == 1 {
		for _, d := range []string{cg.memDir, cg.cpuDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		return nil
	}
	if err := os.MkdirAll(cg.memDir, 0o755); err != nil {
		return err
	}
	// A v2 group with processes of its own cannot enable controllers for
	// its children; the allocator's own group is such a group, so the
	// parent is where they are enabled, and it holds no process.
	return os.WriteFile(filepath.Join(cg.memDir, "cgroup.subtree_control"), []byte("+memory +cpu"), 0o644)
}

// dirs are the directories of instance group name.
func (cg *cgroups) dirs(name string) []string {
	if cg.version == 1 {
		return []string{filepath.Join(cg.memDir, name), filepath.Join(cg.cpuDir, name)}
	}
	return []string{filepath.Join(cg.memDir, name)}
}

// create makes instance group name with mem bytes of memory and the CPU
// weight that goes with it. It returns the cgroup.procs files a process
// joins the group through.
func (cg *cgroups) create(name string, mem int64) ([]string, error) {
	var procs []string
	for _, d := range cg.dirs(name) {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, err
		}
		procs = append(procs, filepath.Join(d, "cgroup.procs"))
	}
	w := strconv.FormatInt(cpuWeight(cg.version, mem), 10)
	m := strconv.FormatInt(mem, 10)
	var writes [][2]string
	if cg.version == 1 {
		d := cg.dirs(name)
		writes = [][2]string{{filepath.Join(d[0], v1MemLimit), m}, {filepath.Join(d[1], v1Shares), w}}
	} else {
		d := cg.dirs(name)[0]
		writes = [][2]string{{filepath.Join(d, v2MemMax), m}, {filepath.Join(d, v2Weight), w}}
	}
	for _, wr := range writes {
		if err := os.WriteFile(wr[0], []byte(wr[1]), 0o644); err != nil {
			return nil, err
		}
	}
	if cg.version == 1 {
		// Where swap is accounted, memory and swap together get the same
		// limit: swap must not stretch the instance's size. (Written after
		// memory.limit_in_bytes, which it may not be below.)
		if f := filepath.Join(cg.dirs(name)[0], "memory.memsw.limit_in_bytes"); fileExists(f) {
			_ = os.WriteFile(f, []byte(m), 0o644)
		}
	} else {
		_ = os.WriteFile(filepath.Join(cg.dirs(name)[0], "memory.swap.max"), []byte("0"), 0o644)
	}
	return procs, nil
}

// oomKills is the number of processes of group name the kernel killed for
// going over its memory limit.
func (cg *cgroups) oomKills(name string) (int64, error) {
	file := filepath.Join(cg.dirs(name)[0], v2Events)
	if cg.version == 1 {
		file = filepath.Join(cg.dirs(name)[0], v1OOM)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no oom_kill counter", file)
}

// remove deletes group name; its processes must have ended. A process
// that has just ended may still count in its group for a moment (the
// kernel is tearing it down, or nobody has reaped it yet), so a busy group
// is tried again for up to a second.
func (cg *cgroups) remove(name string) error {
	var errs []error
	for _, d := range cg.dirs(name) {
		err := os.Remove(d)
		for try := 0; errors.Is(err, syscall.EBUSY) && try < 20; try++ {
			time.Sleep(50 * time.Millisecond)
			err = os.Remove(d)
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// settings are the group's limit and weight files with their values, for
// status and tests.
func (cg *cgroups) settings(name string) map[string]string {
	out := map[string]string{}
	files := []string{filepath.Join(cg.dirs(name)[0], v2MemMax), filepath.Join(cg.dirs(name)[0], v2Weight)}
	if cg.version == 1 {
		files = []string{filepath.Join(cg.dirs(name)[0], v1MemLimit), filepath.Join(cg.dirs(name)[1], v1Shares)}
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			out[f] = strings.TrimSpace(string(b))
		}
	}
	return out
}
