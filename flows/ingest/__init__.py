"""Ingest: landing files in, the state database out. scan and extract (read, archive, validate),
the failure threshold, load (one transaction per batch of files), quarantine views."""
