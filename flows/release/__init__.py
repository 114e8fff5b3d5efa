"""Release: a build in, the current release out. The audit (Great Expectations), publish, the
release store (manifest, sidecars, stable path), operator commands, the report, run summaries."""
