"""Vehicle service: vehicles, telemetry and positions, diagnostics, firmware, reservations."""
