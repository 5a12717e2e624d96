// Package deploy holds no code. Its folder has the deployment files beyond
// `make run`: compose target files (compose/), the Grafana dashboard and
// provisioning (grafana/) and a Kubernetes example (k8s/). Its tests check
// them, and the project's rules.yml and prometheus.yml, with the real tools
// (promtool, docker-compose) and by parsing them: every query names only
// metrics that exist, and the copies of exporter flags and mappings stay in
// step with the repo.
package deploy
