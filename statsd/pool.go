package statsd

// The supervisor's gauges beyond Workers. Each is sent with the same tag
// keys every time (see the names in statsd.go), and re-sent every report
// interval, so an exporter that restarted has them again within seconds;
// mapping.yml gives them a ttl, so a dead supervisor's values disappear.
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

// gauge sets name to v with the app_name tag and then tags.
func (c *Client) gauge(name string, v float64, tags ...string) {
	if client := c.dd.Load(); client != nil {
		c.gate.RLock()
		_ = client.Gauge(name, v, append([]string{c.appTag}, tags...), 1)
		c.gate.RUnlock()
	}
}
