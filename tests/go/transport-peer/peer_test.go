package peer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/yamux"
)

func binary_(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("PLUGIN_BIN")
	if bin == "" {
		t.Fatal("PLUGIN_BIN must name the rollouts-guardrails binary (tests/plugin/plugin_transport.rs sets it)")
	}
	return bin
}

// --- go-plugin client, configured exactly as argo-rollouts' metricproviders/plugin/client does ---

func newArgoClient(t *testing.T) (*goplugin.Client, *exec.Cmd) {
	cmd := exec.Command(binary_(t))
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          map[string]goplugin.Plugin{"RpcMetricProviderPlugin": metricPlugin{}},
		Cmd:              cmd,
		Managed:          true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolNetRPC},
	})
	return client, cmd
}

func dispense(t *testing.T, client *goplugin.Client) (goplugin.ClientProtocol, *rpc.Client) {
	t.Helper()
	proto, err := client.Client()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	raw, err := proto.Dispense("RpcMetricProviderPlugin")
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	return proto, raw.(*rpc.Client)
}

func run(t *testing.T, c *rpc.Client, args RunArgs) Measurement {
	t.Helper()
	var req any = args
	var resp Measurement
	if err := c.Call("Plugin.Run", &req, &resp); err != nil {
		t.Fatalf("Plugin.Run: %v", err)
	}
	return resp
}

func TestGoPluginClientSession(t *testing.T) {
	client, cmd := newArgoClient(t)
	defer client.Kill()
	proto, c := dispense(t, client)
	socket := client.ReattachConfig().Addr.String()
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v mode %v", socket, err, fi)
	}

	if err := proto.Ping(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	var initReq any
	var initResp RpcError
	if err := c.Call("Plugin.InitPlugin", &initReq, &initResp); err != nil || initResp.ErrorString != "" {
		t.Fatalf("InitPlugin: %v %+v", err, initResp)
	}
	var typ string
	var typeReq any
	if err := c.Call("Plugin.Type", &typeReq, &typ); err != nil || typ != "RPCPlugin" {
		t.Fatalf("Type: %v %q", err, typ)
	}

	m := run(t, c, sampleRunArgs(0))
	// The real engine answers: this Run's restarts metric carries a successCondition, which the parser refuses
	// (conditions belong to guardrail query) before anything is asked: a fail-closed config error.
	if m.Phase != "Failed" || !strings.Contains(m.Message, "successCondition is not used by guardrail `restarts`") || m.Metadata["failure"] != "config" ||
		m.StartedAt == nil || m.FinishedAt == nil {
		t.Fatalf("Run: %+v", m)
	}
	if d := time.Since(m.FinishedAt.Time); d < 0 || d > time.Minute {
		t.Fatalf("FinishedAt not now: %v", m.FinishedAt)
	}

	// Resume hands back what it is given, including times and metadata (GobEncoder round trip).
	started := Time{time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)}
	given := Measurement{Phase: "Successful", Message: "ok", StartedAt: &started, Value: "42",
		Metadata: map[string]string{"query": "up"}}
	var resumeReq any = TerminateAndResumeArgs{AnalysisRun: sampleRunArgs(0).AnalysisRun, Metric: sampleRunArgs(0).Metric, Measurement: given}
	var resumed Measurement
	if err := c.Call("Plugin.Resume", &resumeReq, &resumed); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if resumed.Phase != "Successful" || resumed.Value != "42" || resumed.Metadata["query"] != "up" ||
		resumed.StartedAt == nil || !resumed.StartedAt.Equal(started.Time) || resumed.FinishedAt != nil {
		t.Fatalf("Resume: %+v", resumed)
	}
	var terminated Measurement
	if err := c.Call("Plugin.Terminate", &resumeReq, &terminated); err != nil || terminated.Phase != "Successful" || terminated.FinishedAt == nil {
		t.Fatalf("Terminate: %v %+v", err, terminated)
	}

	var gcReq any = GarbageCollectArgs{AnalysisRun: sampleRunArgs(0).AnalysisRun, Metric: sampleRunArgs(0).Metric, Limit: 5}
	var gcResp RpcError
	if err := c.Call("Plugin.GarbageCollect", &gcReq, &gcResp); err != nil || gcResp.ErrorString != "" {
		t.Fatalf("GarbageCollect: %v %+v", err, gcResp)
	}
	var mdReq any = GetMetadataArgs{Metric: sampleRunArgs(0).Metric}
	var md map[string]string
	if err := c.Call("Plugin.GetMetadata", &mdReq, &md); err != nil {
		t.Fatalf("GetMetadata: %v", err)
	}

	// A Run without an AnalysisRun is a Failed measurement with the reason, not an rpc error.
	bad := sampleRunArgs(0)
	bad.AnalysisRun = nil
	if m := run(t, c, bad); m.Phase != "Failed" || !strings.Contains(m.Message, "AnalysisRun") || m.FinishedAt == nil {
		t.Fatalf("Run without AnalysisRun: %+v", m)
	}

	// Unknown method: Go's exact text, and the stream stays usable.
	var nope any
	var nopeResp struct{}
	if err := c.Call("Plugin.Nope", &nope, &nopeResp); err == nil || err.Error() != "rpc: can't find method Plugin.Nope" {
		t.Fatalf("unknown method: %v", err)
	}
	if err := c.Call("Nope.Nope", &nope, &nopeResp); err == nil || err.Error() != "rpc: can't find service Nope.Nope" {
		t.Fatalf("unknown service: %v", err)
	}
	if _, err := proto.Dispense("Nope"); err == nil || !strings.Contains(err.Error(), "unknown plugin type: Nope") {
		t.Fatalf("dispense unknown: %v", err)
	}

	// > 256 KiB in both directions: a 1 MiB label in, a 1 MiB metadata value back.
	if m := run(t, c, sampleRunArgs(1<<20)); m.Phase != "Failed" {
		t.Fatalf("large Run: %+v", m)
	}
	huge := strings.Repeat("x", 1<<20)
	given.Metadata = map[string]string{"huge": huge}
	var hugeReq any = TerminateAndResumeArgs{Measurement: given}
	var hugeResp Measurement
	if err := c.Call("Plugin.Resume", &hugeReq, &hugeResp); err != nil || hugeResp.Metadata["huge"] != huge {
		t.Fatalf("large Resume: %v (%d bytes back)", err, len(hugeResp.Metadata["huge"]))
	}

	// 150 concurrent calls on the Plugin stream and the control stream.
	var wg sync.WaitGroup
	errs := make(chan error, 300)
	for i := 0; i < 150; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			var req any = TerminateAndResumeArgs{Measurement: Measurement{Phase: "Successful", Value: fmt.Sprint(i)}}
			var resp Measurement
			if err := c.Call("Plugin.Resume", &req, &resp); err != nil || resp.Value != fmt.Sprint(i) {
				errs <- fmt.Errorf("call %d: %v %q", i, err, resp.Value)
			}
		}(i)
		go func() {
			defer wg.Done()
			if err := proto.Ping(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Kill: Control.Quit, graceful exit 0, socket removed.
	client.Kill()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit after Kill: %v", cmd.ProcessState)
	}
	if _, err := os.Stat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(socket)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket dir left behind: %v", err)
	}
}

// --- the binary driven by hand: handshake, raw yamux, broker, signals ---

type started struct {
	cmd    *exec.Cmd
	line   string
	socket string
	stdout *bufio.Reader
	stderr *bytes.Buffer
	done   chan error
}

func startPlugin(t *testing.T, extraEnv ...string) *started {
	t.Helper()
	cmd := exec.Command(binary_(t))
	cmd.Env = append(os.Environ(), append([]string{"ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider", "PLUGIN_PROTOCOL_VERSIONS=1", "RUST_LOG=debug"}, extraEnv...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(bytes.Buffer)
	cmd.Stderr = &lockedWriter{w: stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, stdout: bufio.NewReader(stdout), stderr: stderr, done: make(chan error, 1)}
	lineCh := make(chan string, 1)
	go func() {
		line, _ := s.stdout.ReadString('\n')
		lineCh <- line
	}()
	select {
	case s.line = <-lineCh:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("no handshake line within 10s")
	}
	parts := strings.Split(strings.TrimSuffix(s.line, "\n"), "|")
	if len(parts) != 6 || parts[0] != "1" || parts[1] != "1" || parts[2] != "unix" || parts[4] != "netrpc" || parts[5] != "" {
		cmd.Process.Kill()
		t.Fatalf("handshake line %q", s.line)
	}
	s.socket = parts[3]
	go func() {
		rest, _ := io.ReadAll(s.stdout)
		if len(rest) > 0 {
			s.done <- fmt.Errorf("bytes on stdout after the handshake: %q", rest)
			return
		}
		s.done <- cmd.Wait()
	}()
	return s
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitExit0 waits for the process, checks exit 0, the socket and its directory removed, and hclog lines.
func (s *started) waitExit0(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("plugin exit: %v; stderr:\n%s", err, s.stderr)
		}
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		t.Fatalf("plugin did not exit; stderr:\n%s", s.stderr)
	}
	if _, err := os.Stat(s.socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		if line == "" {
			continue
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		for _, k := range []string{"@level", "@message", "@timestamp"} {
			if _, ok := entry[k].(string); !ok {
				t.Fatalf("%s not a string in %q", k, line)
			}
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", entry["@timestamp"].(string)); err != nil {
			t.Fatalf("timestamp layout: %v", err)
		}
	}
}

type conn struct {
	session *yamux.Session
	control *rpc.Client
}

func connect(t *testing.T, s *started, cfg *yamux.Config) *conn {
	t.Helper()
	raw, err := net.Dial("unix", s.socket)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	session, err := yamux.Client(raw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	control, err := session.Open()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // stdout, stderr: left idle, as go-plugin does with a non-Go plugin
		if _, err := session.Open(); err != nil {
			t.Fatal(err)
		}
	}
	return &conn{session: session, control: rpc.NewClient(control)}
}

// brokerStream dispenses and connects a Plugin stream by hand (the MuxBroker dial side).
func (c *conn) brokerStream(t *testing.T) net.Conn {
	t.Helper()
	var id uint32
	if err := c.control.Call("Dispenser.Dispense", "RpcMetricProviderPlugin", &id); err != nil {
		t.Fatalf("dispense: %v", err)
	}
	stream, err := c.session.OpenStream()
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

func fastKeepalive() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.KeepAliveInterval = 100 * time.Millisecond
	cfg.ConnectionWriteTimeout = time.Second
	cfg.StreamOpenTimeout = 500 * time.Millisecond
	cfg.LogOutput = io.Discard
	return cfg
}

func TestYamuxDirect(t *testing.T) {
	s := startPlugin(t)
	c := connect(t, s, fastKeepalive())

	// Idle streams were ACKed (else yamux closes the session after StreamOpenTimeout) and keepalive pings
	// (every 100 ms) were answered within ConnectionWriteTimeout.
	time.Sleep(1500 * time.Millisecond)
	if c.session.IsClosed() {
		t.Fatal("session closed: a stream open was not ACKed or a keepalive went unanswered")
	}
	if rtt, err := c.session.Ping(); err != nil {
		t.Fatalf("ping: %v (%v)", err, rtt)
	}
	var empty struct{}
	if err := c.control.Call("Control.Ping", true, &empty); err != nil {
		t.Fatalf("Control.Ping: %v", err)
	}

	// 120 broker streams, each with a call, all at once.
	var wg sync.WaitGroup
	errs := make(chan error, 120)
	for i := 0; i < 120; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stream := c.brokerStream(t)
			client := rpc.NewClient(stream)
			defer client.Close()
			// A finished measurement: Resume echoes it (a Running one would be measured again).
			var req any = TerminateAndResumeArgs{Measurement: Measurement{Phase: "Failed", Value: fmt.Sprint(i)}}
			var resp Measurement
			if err := client.Call("Plugin.Resume", &req, &resp); err != nil || resp.Value != fmt.Sprint(i) {
				errs <- fmt.Errorf("stream %d: %v %+v", i, err, resp)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// FIN: a > 256 KiB request (crosses the initial window), then the host half-closes the stream. The
	// reply is read from yamux's buffer (hashicorp/yamux returns EOF on reads after a local Close once its
	// buffer is empty), and the server's own FIN completes the close: the session forgets the stream.
	stream := c.brokerStream(t)
	enc := gob.NewEncoder(stream)
	var req any = sampleRunArgs(300 << 10)
	if err := enc.Encode(rpc.Request{ServiceMethod: "Plugin.Run", Seq: 9}); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(&req); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	before := c.session.NumStreams()
	if err := stream.Close(); err != nil { // FIN
		t.Fatal(err)
	}
	dec := gob.NewDecoder(stream)
	var header rpc.Response
	var m Measurement
	if err := dec.Decode(&header); err != nil || header.Seq != 9 || header.Error != "" {
		t.Fatalf("reply: %v %+v", err, header)
	}
	if err := dec.Decode(&m); err != nil || m.Phase != "Failed" {
		t.Fatalf("reply body: %v %+v", err, m)
	}
	deadline := time.Now().Add(3 * time.Second)
	for c.session.NumStreams() >= before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := c.session.NumStreams(); n >= before {
		t.Fatalf("server did not FIN the half-closed stream: %d streams (was %d)", n, before)
	}

	// A broker stream with an id nobody reserved is reset.
	bogus, err := c.session.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	binary.Write(bogus, binary.LittleEndian, uint32(4242))
	bogus.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := bogus.Read(make([]byte, 4)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("unknown broker id: read %d, %v (want a reset)", n, err)
	}

	// An undecodable request body gets an error reply and the stream stays usable.
	raw := c.brokerStream(t)
	renc := gob.NewEncoder(raw)
	renc.Encode(rpc.Request{ServiceMethod: "Plugin.Type", Seq: 1})
	// A value message naming a type id that was never defined: well delimited, undecodable.
	raw.Write([]byte{0x03, 0xFF, 0xF0, 0x00})
	renc.Encode(rpc.Request{ServiceMethod: "Plugin.Type", Seq: 2})
	var nilArg any
	renc.Encode(&nilArg)
	rdec := gob.NewDecoder(raw)
	replies := map[uint64]string{} // replies come in any order, matched by Seq
	for i := 0; i < 2; i++ {
		var h rpc.Response
		if err := rdec.Decode(&h); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if h.Error != "" {
			var ignored struct{}
			rdec.Decode(&ignored)
			replies[h.Seq] = "error: " + h.Error
			continue
		}
		var typ string
		if err := rdec.Decode(&typ); err != nil {
			t.Fatalf("Type body: %v", err)
		}
		replies[h.Seq] = typ
	}
	if !strings.HasPrefix(replies[1], "error: gob: ") || replies[2] != "RPCPlugin" {
		t.Fatalf("bad body then good call: %q", replies)
	}

	// GoAway from the host: calls on open streams still work, new streams are refused.
	if err := c.session.GoAway(); err != nil {
		t.Fatal(err)
	}
	if err := c.control.Call("Control.Ping", true, &empty); err != nil {
		t.Fatalf("Control.Ping after GoAway: %v", err)
	}
	late, err := c.session.OpenStream()
	if err == nil {
		late.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := late.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("stream after GoAway not refused: %v", err)
		}
	}

	// Host hang-up: exit 0, socket removed.
	c.session.Close()
	s.waitExit0(t)
}

func TestControlQuitExits0(t *testing.T) {
	s := startPlugin(t)
	c := connect(t, s, nil)
	var empty struct{}
	if err := c.control.Call("Control.Quit", true, &empty); err != nil {
		t.Fatalf("Quit: %v", err)
	}
	s.waitExit0(t)
}

func TestSigtermExits0(t *testing.T) {
	for _, connected := range []bool{false, true} {
		s := startPlugin(t)
		if connected {
			c := connect(t, s, nil)
			var empty struct{}
			if err := c.control.Call("Control.Ping", true, &empty); err != nil {
				t.Fatal(err)
			}
		}
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.waitExit0(t)
	}
}

func TestSocketDirFromHost(t *testing.T) {
	dir := t.TempDir()
	s := startPlugin(t, "PLUGIN_UNIX_SOCKET_DIR="+dir)
	if filepath.Dir(s.socket) != dir {
		t.Fatalf("socket %s not in %s", s.socket, dir)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.waitExit0(t)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the host's directory must stay: %v", err)
	}
}

func TestWithoutCookieExits1AndStdoutStaysEmpty(t *testing.T) {
	for _, env := range [][]string{nil, {"ARGO_ROLLOUTS_RPC_PLUGIN=stepplugin"}} {
		cmd := exec.Command(binary_(t))
		cmd.Env = append(filterEnv(os.Environ(), "ARGO_ROLLOUTS_RPC_PLUGIN="), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("env %v: want exit 1, got %v", env, err)
		}
		if stdout.Len() != 0 || stderr.Len() == 0 {
			t.Fatalf("env %v: stdout %q, stderr %q", env, stdout.String(), stderr.String())
		}
	}
}

func filterEnv(env []string, prefix string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}
