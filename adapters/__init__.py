"""Adapters that route Redis and HTTP clients through a hashring placement."""
