"""Observability as code: dashboards (Grafana JSON) and the static report rendered from them."""
