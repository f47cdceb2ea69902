"""Alertmanager webhook receiver: incidents, approvals and JIRA tickets."""
