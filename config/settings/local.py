"""Embedded defaults for a laptop: SQLite, filesystem broker, DEBUG on unless told otherwise."""

from .base import *  # noqa: F403
from .base import env, env_bool

DEBUG = env_bool("DEBUG", True)
# A local-only key, so `make run` works with nothing set. production.py refuses this path.
SECRET_KEY = env("SECRET_KEY", "local-dev-insecure-key-not-for-production")
