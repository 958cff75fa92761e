"""Grafana provisioning and dashboards of WhatLead (dashboards.py writes dashboards/*.json)."""
