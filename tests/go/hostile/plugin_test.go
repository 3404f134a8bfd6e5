// Package hostile puts rollouts-guardrails' plugin mode under abuse: malformed and hostile bytes on raw yamux
// streams, a yamux frame with a bad version, SIGKILL mid-Run followed by a fresh client, leftovers after
// normal exits, and sustained concurrent load through argo-rollouts' own plugin client.
//
//	GUARDRAILS_BIN=$PWD/target/debug/rollouts-guardrails go test -count=1 ./...   (from tests/go/hostile)
//
// GUARDRAILS_LOAD_MEASUREMENTS (default 100000) and GUARDRAILS_LOAD_CALLERS (default 30) size the load test;
// GUARDRAILS_LOAD_REPORT names a file the memory curve is written to.
package hostile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

func binary_(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("GUARDRAILS_BIN")
	if bin == "" {
		t.Fatal("GUARDRAILS_BIN must name the rollouts-guardrails binary")
	}
	return bin
}

// started is the plugin binary run by hand, as go-plugin runs it, with its stderr captured.
type started struct {
	cmd    *exec.Cmd
	socket string
	stderr *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startPlugin(t *testing.T, extraEnv ...string) *started {
	t.Helper()
	cmd := exec.Command(binary_(t))
	cmd.Env = append(os.Environ(), append([]string{"ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider", "PLUGIN_PROTOCOL_VERSIONS=1", "RUST_LOG=debug"}, extraEnv...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	reader := bufio.NewReader(stdout)
	lineCh := make(chan string, 1)
	go func() {
		line, _ := reader.ReadString('\n')
		lineCh <- line
		_, _ = io.Copy(io.Discard, reader)
		s.done <- cmd.Wait()
	}()
	var line string
	select {
	case line = <-lineCh:
	case <-time.After(10 * time.Second):
		t.Fatal("no handshake line within 10s")
	}
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) < 5 || parts[2] != "unix" {
		t.Fatalf("handshake line %q", line)
	}
	s.socket = parts[3]
	return s
}

// waitExit waits for the process to end and says how.
func (s *started) waitExit(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(within):
		t.Fatalf("the plugin did not exit within %v; stderr:\n%s", within, s.stderr)
		return nil
	}
}

// alive fails the test when the process has exited.
func (s *started) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		t.Fatalf("the plugin exited (%v); stderr:\n%s", err, s.stderr)
	default:
	}
}

// noPanic fails the test when stderr shows a Rust panic.
func (s *started) noPanic(t *testing.T) {
	t.Helper()
	if text := s.stderr.String(); strings.Contains(text, "panicked") {
		t.Fatalf("the plugin panicked:\n%s", text)
	}
}

type session struct {
	mux     *yamux.Session
	control *rpc.Client
}

func quietYamux() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.ConnectionWriteTimeout = 2 * time.Second
	cfg.StreamOpenTimeout = 2 * time.Second
	return cfg
}

// connect opens the session as go-plugin does: control stream, then stdout and stderr streams.
func connect(t *testing.T, s *started) *session {
	t.Helper()
	raw, err := net.Dial("unix", s.socket)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	mux, err := yamux.Client(raw, quietYamux())
	if err != nil {
		t.Fatal(err)
	}
	control, err := mux.Open()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := mux.Open(); err != nil {
			t.Fatal(err)
		}
	}
	return &session{mux: mux, control: rpc.NewClient(control)}
}

// pluginStream dispenses the Plugin service and connects a broker stream to it, by hand.
func (c *session) pluginStream(t *testing.T) net.Conn {
	t.Helper()
	var id uint32
	if err := c.control.Call("Dispenser.Dispense", "RpcMetricProviderPlugin", &id); err != nil {
		t.Fatalf("dispense: %v", err)
	}
	stream, err := c.mux.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(stream, binary.LittleEndian, id); err != nil {
		t.Fatal(err)
	}
	var ack uint32
	if err := binary.Read(stream, binary.LittleEndian, &ack); err != nil || ack != id {
		t.Fatalf("broker ack %d for id %d: %v", ack, id, err)
	}
	return stream
}

// endsWithin reads from stream until it ends (EOF, reset) or any bytes arrive; returns what arrived.
func endsWithin(t *testing.T, stream net.Conn, within time.Duration) ([]byte, error) {
	t.Helper()
	_ = stream.SetReadDeadline(time.Now().Add(within))
	got, err := io.ReadAll(stream)
	var timeout net.Error
	if errors.As(err, &timeout) && timeout.Timeout() {
		return got, fmt.Errorf("the stream neither answered nor closed within %v (read %d bytes)", within, len(got))
	}
	return got, nil
}

// stillServes proves the plugin still answers on new streams: a control Ping and a Plugin.Type call.
func stillServes(t *testing.T, s *started, c *session) {
	t.Helper()
	if err := c.control.Call("Control.Ping", true, new(struct{})); err != nil {
		t.Fatalf("control ping after abuse: %v; stderr:\n%s", err, s.stderr)
	}
	client := rpc.NewClient(c.pluginStream(t))
	defer client.Close()
	var kind string
	if err := client.Call("Plugin.Type", new(any), &kind); err != nil {
		t.Fatalf("Plugin.Type after abuse: %v; stderr:\n%s", err, s.stderr)
	}
	if kind == "" {
		t.Fatal("Plugin.Type answered an empty type")
	}
	s.alive(t)
	s.noPanic(t)
}
