package harness

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/hashicorp/go-hclog"
	goPlugin "github.com/hashicorp/go-plugin"
)

// HandshakeConfig is argo-rollouts' metricproviders/plugin/client handshakeConfig, verbatim.
var HandshakeConfig = goPlugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "ARGO_ROLLOUTS_RPC_PLUGIN",
	MagicCookieValue: "metricprovider",
}

// DispenseName is the only plugin name Argo dispenses from a metric-provider plugin.
const DispenseName = "RpcMetricProviderPlugin"

// pluginMap is argo-rollouts' metricproviders/plugin/client pluginMap, verbatim.
func pluginMap() map[string]goPlugin.Plugin {
	return map[string]goPlugin.Plugin{DispenseName: &rpc.RpcMetricProviderPlugin{}}
}

// Plugin is one running plugin process, connected the way the controller connects it.
type Plugin struct {
	Client   *goPlugin.Client
	Provider rpc.MetricProviderPlugin
	logs     *syncBuffer
}

// Options change how a plugin is started. The zero value starts it exactly as Argo does.
type Options struct {
	// Args are the registration's `args` (the metricProviderPlugins entry of argo-rollouts-config). Argo
	// v1.7+ passes them as the plugin's argv: utils/plugin.GetPluginInfo returns PluginItem.Args and
	// metricproviders/plugin/client.startPluginSystem builds exec.Command(pluginPath, args...).
	Args []string
	// Env is added to the child's environment (Argo adds nothing; go-plugin adds the cookie and its own vars).
	Env []string
	// Handshake overrides HandshakeConfig (for the wrong-cookie case).
	Handshake *goPlugin.HandshakeConfig
}

// newClient builds the go-plugin client exactly as argo-rollouts' startPluginSystem does. The only addition is
// a Logger capturing the host-side log (the plugin's stderr as go-plugin re-logs it), which changes nothing on
// the wire; Argo leaves Logger nil (hclog to os.Stderr).
func newClient(bin string, opts Options) (*goPlugin.Client, *syncBuffer) {
	cmd := exec.Command(bin, opts.Args...)
	if len(opts.Env) > 0 {
		// go-plugin appends os.Environ() and its own variables after these.
		cmd.Env = append([]string(nil), opts.Env...)
	}
	hs := HandshakeConfig
	if opts.Handshake != nil {
		hs = *opts.Handshake
	}
	logs := &syncBuffer{}
	client := goPlugin.NewClient(&goPlugin.ClientConfig{
		HandshakeConfig: hs,
		Plugins:         pluginMap(),
		Cmd:             cmd,
		Managed:         true,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "plugin",
			Output: logs,
			Level:  hclog.Trace,
		}),
	})
	return client, logs
}

// Dial starts the plugin, connects, dispenses RpcMetricProviderPlugin and casts it to
// rpc.MetricProviderPlugin, as startPluginSystem does. It does not call InitPlugin.
func Dial(bin string, opts Options) (*Plugin, error) {
	client, logs := newClient(bin, opts)
	p := &Plugin{Client: client, logs: logs}
	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("unable to get plugin client: %w%s", err, p.logTail())
	}
	raw, err := rpcClient.Dispense(DispenseName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("unable to dispense plugin: %w%s", err, p.logTail())
	}
	provider, ok := raw.(rpc.MetricProviderPlugin)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("unexpected type from plugin: %T", raw)
	}
	p.Provider = provider
	return p, nil
}

// Start is Dial followed by InitPlugin, failing if InitPlugin reports an error.
func Start(bin string, opts Options) (*Plugin, error) {
	p, err := Dial(bin, opts)
	if err != nil {
		return nil, err
	}
	if resp := p.Provider.InitPlugin(); resp.HasError() {
		p.Kill()
		return nil, fmt.Errorf("unable to initialize plugin via rpc: %s%s", resp.ErrorString, p.logTail())
	}
	return p, nil
}

// Ping is what the controller calls before every measurement.
func (p *Plugin) Ping() error {
	c, err := p.Client.Client()
	if err != nil {
		return err
	}
	return c.Ping()
}

// Kill stops the plugin the way go-plugin does (Control.Quit, then SIGKILL after 2 s).
func (p *Plugin) Kill() { p.Client.Kill() }

// Logs returns what the host logged for this plugin so far (its stderr, re-logged by go-plugin).
func (p *Plugin) Logs() string { return p.logs.String() }

func (p *Plugin) logTail() string {
	s := p.logs.String()
	if s == "" {
		return ""
	}
	const max = 4000
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return "\nhost log of the plugin:\n" + s
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
