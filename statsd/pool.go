package statsd

import (
	"strings"

	dd "github.com/DataDog/datadog-go/v5/statsd"
)

// The supervisor's gauges beyond Workers. Each is sent with the same tag
// keys every time (see the names in statsd.go); the supervisor sets them
// again every second while its event loop beats, so an exporter that
// restarted has them again within seconds, and mapping.yml gives them a ttl,
// so a dead or stuck supervisor's values disappear.
const (
	// BuildInfo is always 1; tags app_name, version, goversion say which
	// build the supervisor runs.
	BuildInfo = "forkwatch_build_info"
	// WorkersConfigured gauges the pool size the supervisor keeps (-workers,
	// changed by SIGTTIN/SIGTTOU); tag app_name.
	WorkersConfigured = "forkwatch_workers_configured"
	// WorkersBusy gauges the ready workers with a request in flight at
	// their last report; tag app_name.
	WorkersBusy = "forkwatch_workers_busy"
)

// SetPool sets the pool gauges: ready workers (Workers), the configured
// pool size and the busy workers.
func (c *Client) SetPool(ready, configured, busy int) {
	c.gauge(Workers, float64(ready))
	c.gauge(WorkersConfigured, float64(configured))
	c.gauge(WorkersBusy, float64(busy))
}

// SetBuildInfo sets the build-info gauge (value 1) for version and
// goVersion.
func (c *Client) SetBuildInfo(version, goVersion string) {
	c.gauge(BuildInfo, 1, "version:"+SanitizeTagValue(version), "goversion:"+SanitizeTagValue(goVersion))
}

// gaugeValue is a gauge's latest value and full tag list, and whether it
// is still to be sent.
type gaugeValue struct {
	name    string
	v       float64
	tags    []string
	pending bool
}

// gauge sets name to v with the app_name tag and then tags; the flush
// goroutine sends it at its next flush (once: the caller repeats it as often
// as it should reach a restarted exporter, see the root package's
// reportPool). It never blocks.
func (c *Client) gauge(name string, v float64, tags ...string) {
	key := name + "\x00" + strings.Join(tags, ",")
	c.gaugeMu.Lock()
	c.gauges[key] = gaugeValue{name: name, v: v, tags: append([]string{c.appTag}, tags...), pending: true}
	c.gaugeMu.Unlock()
}

// sendGauges hands the gauges set since the last flush to datadog-go and
// returns their keys; called with sendMu held.
func (c *Client) sendGauges(client *dd.Client) []string {
	c.gaugeMu.Lock()
	defer c.gaugeMu.Unlock()
	var sent []string
	for k, g := range c.gauges {
		if g.pending {
			_ = client.Gauge(g.name, g.v, g.tags, 1)
			g.pending = false
			c.gauges[k] = g
			sent = append(sent, k)
		}
	}
	return sent
}

// gaugesUnsent marks gauges whose flush failed as still to be sent, unless
// a newer value was set meanwhile (it is pending anyway).
func (c *Client) gaugesUnsent(keys []string) {
	c.gaugeMu.Lock()
	defer c.gaugeMu.Unlock()
	for _, k := range keys {
		g := c.gauges[k]
		g.pending = true
		c.gauges[k] = g
	}
}
