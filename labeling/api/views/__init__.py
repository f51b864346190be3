"""One APIView per operation; each validates its input, calls one service or selector, and
serializes. See `labeling.api.urls` for the routes."""
