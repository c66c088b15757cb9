/*
Copyright 2026 The Custos Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package controlplane

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is one of Custos's binaries running as a child process, its
// output in a log file, as make dev and the benchmarks run them.
type Process struct {
	cmd *exec.Cmd
	// LogPath holds its output.
	LogPath string

	exited chan struct{}
	err    error
}

// StartProcess runs bin with args, its output to logPath. If this process
// is killed outright, the kernel stops it too (SIGTERM).
func StartProcess(bin string, args []string, logPath string) (*Process, error) {
	return StartProcessWithEnv(bin, args, nil, logPath)
}

// StartProcessWithEnv is StartProcess with env (KEY=value) added to this
// process's environment.
func StartProcessWithEnv(bin string, args, env []string, logPath string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Process{cmd: exec.Command(bin, args...), LogPath: logPath, exited: make(chan struct{})}
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s (run make build): %w", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// WaitReady polls ready every interval until it says yes, and stops the
// process when it does not within timeout, when it exits first, or when
// ctx ends. what names the process in errors.
func (p *Process) WaitReady(ctx context.Context, what string, timeout, interval time.Duration, ready func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			p.Stop()
			return ctx.Err()
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready: %v; see %s", what, p.err, p.LogPath)
		case <-deadline.C:
			p.Stop()
			return fmt.Errorf("%s was not ready within %s; see %s", what, timeout, p.LogPath)
		case <-tick.C:
			if ready() {
				return nil
			}
		}
	}
}

// Stop asks the process to shut down gracefully (SIGTERM) and kills it if
// it has not within 30 seconds.
func (p *Process) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Kill kills the process outright (SIGKILL), as a crash or a node failure
// would, and waits until it has exited.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Exited is closed when the process has exited; Err then says how.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited, once Exited is closed.
func (p *Process) Err() error { return p.err }

// PID is the process's ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }
