package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a process peerbench started, in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	pgid int
	log  string        // file that holds its stderr (and stdout unless discarded)
	done chan struct{} // closed when it exited
	err  error         // from Wait, once done is closed
}

// procs tracks every process group started, so that all of them are
// stopped at the end, on failure and on SIGINT.
type procs struct {
	mu   sync.Mutex
	live map[int]*proc
}

func newProcs() *procs { return &procs{live: map[int]*proc{}} }

// startSpec describes a process to start.
type startSpec struct {
	name    string
	argv    []string
	cpu     int      // pin with taskset -c; -1 keeps peerbench's own CPU
	env     []string // added to the environment
	log     string   // file for stderr, and stdout unless discard
	discard bool     // send stdout to /dev/null
}

// start starts s in a new process group and returns at once.
func (ps *procs) start(s startSpec) (*proc, error) {
	argv := s.argv
	if s.cpu >= 0 {
		taskset, err := lookTool("taskset")
		if err != nil {
			return nil, err
		}
		argv = append([]string{taskset, "-c", strconv.Itoa(s.cpu)}, argv...)
	}
	logf, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stderr = logf
	if !s.discard {
		cmd.Stdout = logf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.name, err)
	}
	p := &proc{name: s.name, cmd: cmd, pgid: cmd.Process.Pid, log: s.log, done: make(chan struct{})}
	ps.mu.Lock()
	ps.live[p.pgid] = p
	ps.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether p has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failure describes p's exit with the end of its log, for error messages.
func (p *proc) failure() error {
	tail := ""
	if b, err := os.ReadFile(p.log); err == nil {
		b = bytes.TrimSpace(b)
		if len(b) > 600 {
			b = b[len(b)-600:]
		}
		tail = ": " + strings.Join(strings.Fields(string(b)), " ")
	}
	return fmt.Errorf("%s exited (%v)%s", p.name, p.err, tail)
}

// stop ends p's process group: SIGTERM, then SIGKILL after grace. Members
// left after the leader exited (workers) are killed too.
func (ps *procs) stop(p *proc, grace time.Duration) {
	_ = syscall.Kill(-p.pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		<-p.done
	}
	_ = syscall.Kill(-p.pgid, syscall.SIGKILL) // stragglers; ESRCH when none
	ps.mu.Lock()
	delete(ps.live, p.pgid)
	ps.mu.Unlock()
}

// stopAll stops every process group still running.
func (ps *procs) stopAll() {
	ps.mu.Lock()
	var all []*proc
	for _, p := range ps.live {
		all = append(all, p)
	}
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(func() { ps.stop(p, 3*time.Second) })
	}
	wg.Wait()
}

// runCmd runs argv to its end in its own process group, killed with the
// group when ctx is done, and returns its stdout. Stderr is appended to the
// error.
func (ps *procs) runCmd(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Tracked too, so that stopAll reaches it whatever path ends the run.
	p := &proc{name: filepath.Base(argv[0]), cmd: cmd, pgid: cmd.Process.Pid, done: make(chan struct{})}
	ps.mu.Lock()
	ps.live[p.pgid] = p
	ps.mu.Unlock()
	err := cmd.Wait()
	close(p.done)
	ps.mu.Lock()
	delete(ps.live, p.pgid)
	ps.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// procStat is what peerbench reads of a /proc/PID/stat line.
type procStat struct {
	pid, pgrp    int
	comm         string
	utime, stime uint64 // clock ticks, all threads of the process
}

// parseProcStat parses a /proc/PID/stat line. The command name is in
// parentheses and may itself hold spaces and parentheses, so fields are
// counted from the last ")".
func parseProcStat(line string) (procStat, error) {
	var s procStat
	open := strings.IndexByte(line, '(')
	end := strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return s, errors.New("no (comm) field")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return s, fmt.Errorf("pid: %w", err)
	}
	s.pid, s.comm = pid, line[open+1:end]
	// After ")": state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8)
	// flags(9) minflt(10) cminflt(11) majflt(12) cmajflt(13) utime(14)
	// stime(15); f[0] is field 3.
	f := strings.Fields(line[end+1:])
	if len(f) < 13 {
		return s, fmt.Errorf("%d fields after comm; want at least 13", len(f))
	}
	if s.pgrp, err = strconv.Atoi(f[2]); err != nil {
		return s, fmt.Errorf("pgrp: %w", err)
	}
	if s.utime, err = strconv.ParseUint(f[11], 10, 64); err != nil {
		return s, fmt.Errorf("utime: %w", err)
	}
	if s.stime, err = strconv.ParseUint(f[12], 10, 64); err != nil {
		return s, fmt.Errorf("stime: %w", err)
	}
	return s, nil
}

// groupCPU returns the CPU time (user + system, every thread) that the live
// processes of process group pgid have used, in clock ticks.
func groupCPU(pgid int) (uint64, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var ticks uint64
	found := false
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		s, err := parseProcStat(string(b))
		if err != nil || s.pgrp != pgid {
			continue
		}
		ticks += s.utime + s.stime
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no process in group %d", pgid)
	}
	return ticks, nil
}

// foreignProcs lists running processes named like the targets that
// peerbench did not start: they compete for the CPUs.
func foreignProcs(ours func(pgrp int) bool) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s, err := parseProcStat(string(b))
		if err != nil || ours(s.pgrp) {
			continue
		}
		switch s.comm {
		case "nginx", "haproxy", "switchyard", "wrk", "yardload":
			out = append(out, fmt.Sprintf("%s[%d]", s.comm, s.pid))
		}
	}
	return out
}

// clockTicks returns USER_HZ, the unit of /proc/PID/stat times.
func clockTicks(ctx context.Context, ps *procs) uint64 {
	if out, err := ps.runCmd(ctx, "getconf", "CLK_TCK"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// lookTool finds a program in PATH or in the sbin directories, which are
// not always in a non-root PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found; run tools/peerbench/install-deps.sh (make bench does)", name)
}

// cpuTimes is one CPU's line of /proc/stat, in clock ticks.
type cpuTimes struct{ busy, total uint64 }

// parseCPUTimes finds the line of CPU cpu in a /proc/stat text. Idle and
// iowait count as idle; everything else (user, nice, system, irq,
// softirq, steal) as busy.
func parseCPUTimes(stat string, cpu int) (cpuTimes, error) {
	want := "cpu" + strconv.Itoa(cpu)
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != want {
			continue
		}
		if len(f) < 6 {
			return cpuTimes{}, fmt.Errorf("/proc/stat %s: %d fields; want at least 5 times", want, len(f)-1)
		}
		var t cpuTimes
		for i, s := range f[1:] {
			if i >= 8 { // guest and guest_nice are already in user and nice
				break
			}
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat %s: %w", want, err)
			}
			t.total += n
			if i != 3 && i != 4 { // idle, iowait
				t.busy += n
			}
		}
		return t, nil
	}
	return cpuTimes{}, fmt.Errorf("/proc/stat: no line for %s", want)
}

// readCPUTimes reads CPU cpu's times from /proc/stat.
func readCPUTimes(cpu int) (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(string(b), cpu)
}

// wakeupKinds are the descriptions, in /proc/interrupts, of the
// interrupts by which one CPU wakes a task on another: x86 names the
// lines RES and CAL, arm64 IPI0 and IPI1, with these descriptions.
var wakeupKinds = []string{"Rescheduling interrupts", "Function call interrupts"}

// parseWakeups sums CPU cpu's column of the wake-up interrupt lines of a
// /proc/interrupts text (a header of CPU names, then one line per
// interrupt: "NAME: count per CPU… description").
func parseWakeups(text string, cpu int) (uint64, error) {
	lines := strings.Split(text, "\n")
	col := slices.Index(strings.Fields(lines[0]), "CPU"+strconv.Itoa(cpu))
	if col < 0 {
		return 0, fmt.Errorf("/proc/interrupts: no column for CPU%d", cpu)
	}
	var sum uint64
	found := 0
	for _, line := range lines[1:] {
		desc := strings.TrimSpace(line)
		if !slices.ContainsFunc(wakeupKinds, func(k string) bool { return strings.HasSuffix(desc, k) }) {
			continue
		}
		f := strings.Fields(line)
		if len(f) < col+2 {
			return 0, fmt.Errorf("/proc/interrupts %s: no count for CPU%d", f[0], cpu)
		}
		n, err := strconv.ParseUint(f[col+1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/interrupts %s: %w", f[0], err)
		}
		sum += n
		found++
	}
	if found != len(wakeupKinds) {
		return 0, fmt.Errorf("/proc/interrupts: %d of the %d wake-up interrupt lines", found, len(wakeupKinds))
	}
	return sum, nil
}

// readWakeups reads CPU cpu's wake-up interrupts from /proc/interrupts.
func readWakeups(cpu int) (uint64, error) {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		return 0, err
	}
	return parseWakeups(string(b), cpu)
}

// busyBetween is the share of a CPU's time that was busy between two
// readings; NaN when no time passed.
func busyBetween(a, b cpuTimes) float64 {
	if b.total <= a.total {
		return math.NaN()
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}
