"""The alerting rules, runbooks and dashboards of deploy/prometheus and deploy/grafana."""
