"""Pieces shared by the fleet-sla services."""
