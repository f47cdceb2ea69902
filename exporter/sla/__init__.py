"""The SLA policy: objectives, windows, maintenance and the ledger, in one place for the queries, the metrics and the reports."""
