"""Decision helpers: RFM segments (baseline targeting) and allocation."""
