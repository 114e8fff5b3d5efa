"""Build: the state in, a release file out. The sql/ models (discovered, ordered, run), their
metadata beside them, the nightly patch of the current release, versions and cache keys."""
