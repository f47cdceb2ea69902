"""The fleet console: server-rendered pages of the fleet's SLA, its vessels and runs."""
