"""The country: the fleet of districts and the national release built from their releases (SPEC 8)."""
