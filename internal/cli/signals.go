package cli

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// onSignals calls handle for each of sigs received, one at a time, until
// the returned function is called, which waits for a call in progress.
// The signals' default actions (for SIGHUP and SIGUSR1: ending the
// process) no longer apply meanwhile.
func onSignals(handle func(os.Signal), sigs ...os.Signal) (stop func()) {
	ch := make(chan os.Signal, len(sigs))
	signal.Notify(ch, sigs...)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case sig := <-ch:
				handle(sig)
			case <-quit:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(quit)
		<-done
	}
}

// ignoreSignals logs each of sigs received instead of letting it end the
// process: a reload (SIGHUP) or a log rotation (SIGUSR1) sent by a service
// manager or logrotate to a process with nothing to reload or reopen must
// not stop it.
func ignoreSignals(logger *slog.Logger, why string, sigs ...os.Signal) (stop func()) {
	return onSignals(func(sig os.Signal) { logIgnored(logger, why, sig) }, sigs...)
}

// logIgnored logs that sig was received and ignored, and why.
func logIgnored(logger *slog.Logger, why string, sig os.Signal) {
	logger.Info("signal ignored: "+why, "signal", signalName(sig))
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	}
	return sig.String()
}
