package allocator

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// process is a running instance: a child the allocator started, or one
// an earlier allocator started and this one adopted.
type process struct {
	pid   int
	start uint64 // start time in clock ticks since boot (/proc/<pid>/stat)
	// done is closed when the process has ended; exit then says how.
	done chan struct{}
	exit exitInfo
}

// exitInfo is how a process ended, as far as the allocator can know: a
// child's status is known; an adopted process's is not.
type exitInfo struct {
	known    bool
	code     int
	signal   syscall.Signal
	signaled bool
}

func (e exitInfo) String() string {
	switch {
	case !e.known:
		return "exited"
	case e.signaled:
		return "killed by " + strings.ToUpper(unix.SignalName(e.signal))
	}
	return "exited with status " + strconv.Itoa(e.code)
}

// ShimEnv names the environment variable that carries the cgroup.procs
// files an instance joins before it runs its command (see Shim).
const ShimEnv = "SWITCHYARD_CGROUP_PROCS"

// Shim runs in the process that becomes an instance, between fork and
// the instance's own program: it moves itself into the cgroups named by
// ShimEnv, then executes argv in its place, keeping its pid. So nothing of
// the instance runs, or allocates, outside its cgroup. It returns only on
// failure.
func Shim(argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if files := os.Getenv(ShimEnv); files != "" {
		for _, f := range strings.Split(files, ":") {
			if err := os.WriteFile(f, pid, 0o644); err != nil {
				return fmt.Errorf("joining the cgroup: %w", err)
			}
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	env := make([]string, 0, len(os.Environ()))
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, ShimEnv+"=") {
			env = append(env, e)
		}
	}
	return syscall.Exec(path, argv, env)
}

// startProcess starts argv (through the shim when procs is not empty) in
// a session of its own, so that the allocator's end, or a signal to its
// process group, does not reach it. Its output goes to logFile.
func startProcess(self string, argv, env []string, dir, logFile string, procs []string) (*process, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	var cmd *exec.Cmd
	if len(procs) > 0 {
		cmd = exec.Command(self, append([]string{ShimCommand}, argv...)...)
		env = append(env, ShimEnv+"="+strings.Join(procs, ":"))
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{pid: cmd.Process.Pid, done: make(chan struct{})}
	p.start, _ = startTicks(p.pid)
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
				p.exit = exitInfo{known: true, code: ws.ExitStatus(), signal: ws.Signal(), signaled: ws.Signaled()}
			}
		} else if err == nil {
			p.exit = exitInfo{known: true}
		}
		close(p.done)
	}()
	return p, nil
}

// ShimCommand is the switchyard subcommand that runs Shim.
const ShimCommand = "instance-exec"

// adoptProcess watches process pid, started by an earlier allocator, if
// it is still the same process: its start time must be start, so that a
// pid the kernel gave to another process since is not adopted.
func adoptProcess(pid int, start uint64) (*process, error) {
	got, err := startTicks(pid)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	if got != start {
		return nil, fmt.Errorf("pid %d is another process now (started at tick %d, not %d)", pid, got, start)
	}
	p := &process{pid: pid, start: start, done: make(chan struct{})}
	if err := watchExit(p); err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	return p, nil
}

// startTicks reads the start time of process pid, in clock ticks since
// boot: field 22 of /proc/<pid>/stat, after the command name in
// parentheses (which may itself hold spaces and parentheses).
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, errors.New("short /proc stat")
	}
	if f[0] == "Z" {
		return 0, errors.New("a zombie")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// signal sends sig to the process, if it still runs.
func (p *process) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	if got, err := startTicks(p.pid); err == nil && got == p.start {
		_ = syscall.Kill(p.pid, sig)
	}
}

// stop ends the process: SIGTERM (and SIGCONT, for a stopped one), then
// SIGKILL after grace. It returns once the process has ended.
func (p *process) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	p.signal(syscall.SIGCONT)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.signal(syscall.SIGKILL)
	<-p.done
}

// kill ends the process at once and waits for its end.
func (p *process) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}
