"""SLA reports for a period, built on the ledger: figures, formats and the CLI's command."""
